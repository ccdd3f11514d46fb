"""The README's flag table documents exactly the flags the job takes (they are generated from the
config's fields, so a new setting shows up here as an undocumented flag)."""

from __future__ import annotations

import re

from pipeline.job.config import build_parser

from .conftest import REPO


def readme_flags() -> list[str]:
    """The flags named in the first column of the README's `| flag | meaning (default) |` table."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("| flag | meaning (default) |") + 2
    flags = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        flags += re.findall(r"--[a-z][a-z-]*", line.split("|")[1])
    return flags


def test_readme_documents_every_flag_once_and_no_other():
    parser_flags = {option for action in build_parser()._actions for option in action.option_strings
                    if option.startswith("--") and option != "--help"}
    documented = readme_flags()
    assert len(documented) == len(set(documented)), "a flag documented twice"
    assert sorted(parser_flags - set(documented)) == [], "flags missing from the README's table"
    assert sorted(set(documented) - parser_flags) == [], "the README's table names flags that do not exist"
