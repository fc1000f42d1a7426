"""A search's study name: a hash of the config that decides what it finds."""

from __future__ import annotations

from pathlib import Path

from nas import compose
from nas.config import DEFAULT_ENERGY_TABLE, hw_profile_path
from nas.driver import study_name_of


def test_study_name_is_a_hash_of_the_search_relevant_config(tmp_path: Path, fast) -> None:
    def name(*overrides: str) -> str:
        return study_name_of(compose(fast(f"search.output_dir={tmp_path}", *overrides)))

    a = name("search.n_trials=3")
    b = name("search.n_trials=9")
    c = name("train.lr=0.01")
    assert a == b != c


def test_a_given_study_name_is_used_as_it_is(fast) -> None:
    assert study_name_of(compose(fast("search.study_name=mine"))) == "mine"


def test_the_energy_keys_leave_a_search_that_sets_none_its_name(tmp_path: Path) -> None:
    # The name +hw=mobile had before energy existed (computed at 65f2fa4): its studies resume.
    assert study_name_of(compose(["+hw=mobile"])) == "mbconv-mnist5k-mobile-e0bfb6ff1b"
    # A reference for the hypervolume scores the front; it changes no trial.
    assert study_name_of(compose(["+hw=mobile", "dataset.hv_ref_energy_uj=10"])) == (
        "mbconv-mnist5k-mobile-e0bfb6ff1b"
    )
    # A budget, another table or the cost axis changes what a trial computes or records.
    table = tmp_path / "table.json"
    table.write_text(hw_profile_path(DEFAULT_ENERGY_TABLE).read_text())
    changed = {
        study_name_of(compose(["+hw=mobile", *extra]))
        for extra in (
            ["hw.energy_budget_uj=5"],
            ["search.cost=energy_uj"],
            [f"hw.energy_table={table}"],
        )
    }
    assert len(changed) == 3 and "mbconv-mnist5k-mobile-e0bfb6ff1b" not in changed
