"""Whose fault a decode worker's death is: the pure rule, case by case."""

from __future__ import annotations

from pipeline.job.crash_blame import Verdict, blame


def test_a_call_queued_behind_another_loses_nothing_of_its_own():
    assert blame(started=False, one_per_parcel=False, suspicions=(1, 0)) == Verdict(False, (1, 0), retry=False)


def test_a_first_death_on_a_sample_is_retried_and_makes_it_a_suspect():
    assert blame(started=True, one_per_parcel=True, suspicions=(0, 0)) == Verdict(False, (1, 0), retry=True)
    # a single unfinished sample is surely what the worker decoded, whatever its parcels
    assert blame(started=True, one_per_parcel=False, suspicions=(0,)) == Verdict(False, (1,), retry=True)


def test_a_death_while_several_samples_may_be_decoded_makes_them_all_suspects():
    assert blame(started=True, one_per_parcel=False, suspicions=(0, 1, 0)) == Verdict(False, (1, 2, 1), retry=True)


def test_a_second_death_surely_on_the_same_sample_blames_it_and_spares_the_rest():
    assert blame(started=True, one_per_parcel=True, suspicions=(1, 1)) == Verdict(True, (1,), retry=False)
    assert blame(started=True, one_per_parcel=False, suspicions=(1,)) == Verdict(True, (), retry=False)


def test_a_second_death_that_cannot_name_its_sample_blames_none():
    assert blame(started=True, one_per_parcel=False, suspicions=(1, 1)) == Verdict(False, (2, 2), retry=True)
