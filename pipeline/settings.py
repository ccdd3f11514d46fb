"""Settings declared once: a dataclass field carries its default, its check and a one-line help.

The reader's ``ReadConfig`` and the job's sections (``job/config.py``) are built from these fields,
and the job's command-line flags are generated from them, so a default, an allowed value or a
description is written in one place. A check returns the value (normalized: lists from YAML become
tuples) or raises ``ConfigError`` saying what is allowed; ``check_fields`` names the field.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], Any]


class ConfigError(ValueError):
    """A setting that is not allowed. ``field`` names it (None: the message names what is wrong itself)
    and ``reason`` says what is allowed. Python callers see ``num_frames must be ...``; where settings
    were given as flags (``make_config``) the error is shown as ``--num-frames: must be ...``."""

    def __init__(self, reason: str, field: str | None = None, *, as_flag: bool = False):
        super().__init__(reason)
        self.reason, self.field, self.as_flag = reason, field, as_flag

    def __str__(self) -> str:
        if self.field is None:
            return self.reason
        return f"{flag_name(self.field)}: {self.reason}" if self.as_flag else f"{self.field} {self.reason}"

    def __reduce__(self):  # pickled with its field (an error may cross from a Ray worker)
        return type(self), (self.reason, self.field), {"as_flag": self.as_flag}

    def named_as_flag(self) -> ConfigError:
        return ConfigError(self.reason, self.field, as_flag=True)


def flag_name(field: str) -> str:
    """``num_frames`` -> ``--num-frames``; ``resolution/buckets`` -> ``--resolution/--buckets``."""
    return "/".join("--" + name.replace("_", "-") for name in field.split("/"))


def setting(default: Any = None, help: str = "", check: Check | None = None, *,
            factory: Callable[[], Any] | None = None, shown: str | None = None, flag: bool = True,
            arg_type: Callable[[str], Any] | None = None, choices: tuple[str, ...] | None = None,
            parse: Callable[[Any], Any] | None = None) -> Any:
    """A dataclass field with its check and help. ``shown``: the default as the help shows it (else the
    default's value); ``flag=False``: a setting of the Python API only; ``arg_type``/``choices``: for
    argparse; ``parse``: turns text (a flag, YAML) into the value, e.g. "256x448" -> (256, 448)."""
    metadata = {"help": help, "check": check, "shown": shown, "flag": flag, "arg_type": arg_type,
                "choices": choices, "parse": parse}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_fields(settings: Any) -> None:
    """Runs every field's check in declaration order and stores the normalized value."""
    for f in dataclasses.fields(settings):
        check = f.metadata.get("check")
        if check is None:
            continue
        try:
            value = check(getattr(settings, f.name))
        except ConfigError as err:
            raise ConfigError(err.reason, err.field or f.name) from None
        object.__setattr__(settings, f.name, value)


def flag_fields(section: Any) -> list[dataclasses.Field]:
    """The fields of a settings class that are command-line flags."""
    return [f for f in dataclasses.fields(section) if f.metadata.get("flag")]


# -- checks: each returns the value or raises ConfigError(reason) --------------------------------

def optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def integer(minimum: int, what: str = "", note: str = "") -> Check:
    """An int (not a bool) >= minimum; ``what`` words it for the message (default "an integer >= N")."""
    what = what or f"an integer >= {minimum}"

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"must be {what}{note}, got {value!r}")
        return value
    return check


def number(minimum: float, *, inclusive: bool, what: str) -> Check:
    """A finite int or float (not a bool): nan and inf are refused everywhere."""
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or \
                (value < minimum if inclusive else value <= minimum):
            raise ConfigError(f"must be {what}, got {value!r}")
        return value
    return check


def one_of(choices: tuple[str, ...], note: str = "") -> Check:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ConfigError(f"must be one of {choices}{note}, got {value!r}")
        return value
    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"must be true or false, got {value!r}")
    return value


def mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"must be a JSON object, got {value!r}")
    return value


def non_empty_text(what: str) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"must be {what}")
        return value
    return check
