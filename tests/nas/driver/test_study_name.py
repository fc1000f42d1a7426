"""A search's study name: a hash of the config that decides what it finds."""

from __future__ import annotations

from pathlib import Path

from nas import compose
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
