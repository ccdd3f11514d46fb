"""How many decode workers each encoder keeps, from the CPUs of the whole cluster.

Decoding needs CPUs that no encoder holds: on GPU nodes beside the encoders, or on CPU-only nodes.
Each encoder gets an equal share of them, taken again whenever a shard starts, so the count follows
nodes that join or leave. Without at least one worker per encoder the job cannot progress, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import ray

from .config import Run

ENCODER_CPUS = 1  # what an encoder actor asks for (driver._start_actors)


class NoDecodeCPU(RuntimeError):
    """No decode worker can be placed: the job cannot make progress until CPUs are added."""


def no_cpu_message(nodes: list[dict[str, float]], encoders: int) -> str:
    return (f"no CPU for decode workers: the cluster has {sum(n.get('CPU', 0) for n in nodes):g} CPU(s) on "
            f"{len(nodes)} node(s) and its {encoders} encoder actor(s) take {encoders * ENCODER_CPUS}, while each "
            "needs at least one decode worker (1 CPU); add CPU nodes, or run fewer encoder actors")


def workers_per_encoder(nodes: list[dict[str, float]], encoders: int) -> int:
    """Each encoder's share of the CPUs no encoder needs (``nodes``: the alive nodes' resources).
    Raises NoDecodeCPU when some encoder would get none."""
    spare = int(sum(node.get("CPU", 0) for node in nodes)) - encoders * ENCODER_CPUS
    if spare < encoders:
        raise NoDecodeCPU(no_cpu_message(nodes, encoders))
    return spare // encoders


def alive_nodes() -> list[dict[str, float]]:
    return [node["Resources"] for node in ray.nodes() if node.get("Alive")]


@dataclass(frozen=True)
class DecodeWorkers:
    """An encoder's decode workers: ``count`` (--decode-workers), else its share of the cluster's spare CPUs
    among ``encoders``."""

    count: int | None = None
    encoders: int = 1
    start_seconds: float = Run.decode_start_seconds  # a worker not up after this long is late

    def now(self) -> int:
        return self.count or workers_per_encoder(alive_nodes(), self.encoders)

    def no_cpu(self) -> NoDecodeCPU:
        return NoDecodeCPU(no_cpu_message(alive_nodes(), self.encoders))

    def __str__(self) -> str:
        try:
            return str(self.now())
        except NoDecodeCPU:
            return "no"
