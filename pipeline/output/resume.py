"""What a run over an output has left to do: pure functions of names and tokens, linear in the
shard count (sets and dicts, never a scan per name), so 10^6 shards plan in seconds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def duplicate_names(names: list[str]) -> list[str]:
    """Names given to more than one input shard, sorted."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


@dataclass
class ResumePlan:
    todo: list[str] = field(default_factory=list)  # URLs to encode, in input order
    committed: list[str] = field(default_factory=list)  # the input's shards committed and current: left untouched
    stale: list[str] = field(default_factory=list)  # committed shards whose source changed: to re-encode
    not_in_input: int = 0  # committed shards the input no longer lists: kept, and counted
    tokens: dict[str, str | None] = field(default_factory=dict)  # URL -> its source token at planning
    given_up: list[str] = field(default_factory=list)  # the input's shards given up before (a run retries them)
    records_read: int = 0  # commit records the output's state was read from (no run file accounted for them)


def plan_resume(urls: list[str], names: list[str], committed: dict[str, tuple[int, str | None]],
                tokens: dict[str, str | None]) -> ResumePlan:
    """``committed``: shard -> (rows, source token when encoded); ``tokens``: URL -> its token now.
    A shard is stale when both tokens are known and differ (a shard committed before tokens were
    recorded cannot be checked, and is kept)."""
    plan = ResumePlan(tokens=tokens)
    for url, name in zip(urls, names):
        entry = committed.get(name)
        if entry is None:
            plan.todo.append(url)
            continue
        then, now = entry[1], tokens.get(url)
        if then is not None and now is not None and then != now:
            plan.stale.append(name)
            plan.todo.append(url)
        else:
            plan.committed.append(name)
    inputs = set(names)
    plan.not_in_input = sum(1 for name in committed if name not in inputs)
    return plan
