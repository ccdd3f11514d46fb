"""The README's flag table is the one the settings make (their help and defaults, written once), row by row."""

from __future__ import annotations

from pipeline.job.config import build_parser, flag_table

from tests.support.jobs import REPO


def test_the_readme_table_is_the_settings_table_row_by_row():
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("| flag | meaning (default) |")
    table = lines[start:start + len(flag_table().splitlines())]
    assert table == flag_table().splitlines()
    assert not lines[start + len(table)].startswith("|"), "the README's table has rows the settings do not"


def test_the_table_has_every_flag_once():
    flags = [line.split("`")[1] for line in flag_table().splitlines()[2:]]
    parser_flags = [action.option_strings[-1] for action in build_parser()._actions
                    if action.option_strings and action.dest != "help"]
    assert flags == parser_flags and len(set(flags)) == len(flags) > 40
