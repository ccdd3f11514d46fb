"""The README's flag table documents exactly the flags the job takes (they are generated from the
config's fields, so a new setting shows up here as an undocumented flag), with the fields' defaults."""

from __future__ import annotations

import re

from pipeline.job.config import SETTINGS, build_parser, shown_default

from tests.support.jobs import REPO


def readme_rows() -> list[tuple[list[str], str]]:
    """(flags, meaning) of each row of the README's `| flag | meaning (default) |` table."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("| flag | meaning (default) |") + 2
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        _, flags, meaning, _ = line.split("|")
        rows.append((re.findall(r"--[a-z][a-z-]*", flags), meaning.strip()))
    return rows


def readme_flags() -> list[str]:
    return [flag for flags, _ in readme_rows() for flag in flags]


def test_readme_documents_every_flag_once_and_no_other():
    parser_flags = {option for action in build_parser()._actions for option in action.option_strings
                    if option.startswith("--") and option != "--help"}
    documented = readme_flags()
    assert len(documented) == len(set(documented)), "a flag documented twice"
    assert sorted(parser_flags - set(documented)) == [], "flags missing from the README's table"
    assert sorted(set(documented) - parser_flags) == [], "the README's table names flags that do not exist"


def test_readme_shows_the_defaults_of_the_fields():
    """A row of one flag whose default is a plain value (not a phrase such as "one per GPU") ends with it."""
    checked = 0
    for flags, meaning in readme_rows():
        name = flags[0][2:].replace("-", "_") if len(flags) == 1 else None
        if name not in SETTINGS:
            continue
        field = SETTINGS[name][1]
        if field.metadata["shown"] is not None or isinstance(field.default, bool):
            continue
        assert meaning.replace("`", "").endswith(f"({shown_default(field)})"), (flags[0], meaning)
        checked += 1
    assert checked >= 15
