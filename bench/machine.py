"""What a benchmark ran on, read from the machine itself (a result without its machine means little)."""

from __future__ import annotations

import os
import platform


def describe_machine() -> str:
    """e.g. ``2 CPUs (Intel(R) Xeon(R) Processor), 24 GiB, Linux x86_64``; GPUs are added when torch sees them."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        memory = f", {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB"
    except (ValueError, OSError, AttributeError):
        pass
    text = f"{os.cpu_count()} CPUs ({cpu}){memory}, {platform.system()} {platform.machine()}"
    try:
        import torch

        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            text += ", GPU: " + ", ".join(names)
    except ImportError:
        pass
    return text
