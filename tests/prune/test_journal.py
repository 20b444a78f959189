"""The resumable search: a killed search, rerun, replays its journal and ends as an
uninterrupted one would (the SIGKILL of the real prune stage is in tests/test_fault_matrix.py)."""

import json

import numpy as np
import pytest
import torch

from rcskd.config import AgentConfig
from rcskd.prune.journal import SearchJournal, preserved_rng
from rcskd.prune.search import search_cem, search_ddpg
from tests.prune.test_env_search import known_optimum_landscape, setting  # noqa: F401

AGENT = AgentConfig(episodes=12, warmup_episodes=4, updates_per_episode=8, batch_size=8)


class Killed(Exception):
    pass


def search_with(journal, new_env, method, kill_after=None):
    """Run `method` with every evaluation through `journal`; raise Killed after `kill_after`
    fresh evaluations. The score draws from the global generators, as dropout would."""
    env = new_env()
    fresh = {"n": 0}

    def score(ratios):
        def compute():
            if kill_after is not None and fresh["n"] >= kill_after:
                raise Killed
            fresh["n"] += 1
            np.random.rand(3), torch.rand(3)  # consumes global random state
            return env_score(ratios)

        return journal.evaluate(method, ratios, compute)

    env_score, env.score = env.score, score
    search = search_ddpg if method == "ddpg" else search_cem
    return search(env, AGENT, seed=3)


@pytest.mark.parametrize("method", ["ddpg", "cem"])
def test_a_killed_search_resumes_from_its_journal_with_the_same_result(setting, tmp_path, method):  # noqa: F811
    new_env = known_optimum_landscape(setting)
    whole = search_with(SearchJournal(None, "f"), new_env, method)
    path = tmp_path / "search.json"
    with pytest.raises(Killed):
        search_with(SearchJournal.open(path, "f"), new_env, method, kill_after=7)
    assert len(json.loads(path.read_text())["entries"]) == 7  # saved as each completed
    journal = SearchJournal.open(path, "f")
    resumed = search_with(journal, new_env, method)
    assert journal.replayed == 7
    assert resumed.ratios == whole.ratios and resumed.score == whole.score
    assert [h["reward"] for h in resumed.history] == [h["reward"] for h in whole.history]
    journal.finish()
    assert not path.exists()


def test_a_journal_of_another_run_or_a_diverging_path_is_not_replayed(tmp_path):
    path = tmp_path / "search.json"
    journal = SearchJournal.open(path, "run-a")
    assert journal.evaluate("random", {"b1": 0.5}, lambda: 0.7) == 0.7
    assert SearchJournal.open(path, "run-b").entries == []  # other fingerprint
    again = SearchJournal.open(path, "run-a")
    assert again.evaluate("random", {"b1": 0.25}, lambda: 0.1) == 0.1  # diverged: scored
    assert again.replayed == 0 and again.entries[0]["ratios"] == {"b1": 0.25}
    path.write_text("{not json")
    assert SearchJournal.open(path, "run-a").entries == []  # damaged: start over


def test_preserved_rng_leaves_the_global_generators_where_they_were():
    np.random.seed(1)
    torch.manual_seed(1)
    with preserved_rng():
        np.random.rand(5), torch.rand(5)
    a = np.random.rand(), float(torch.rand(1))
    np.random.seed(1)
    torch.manual_seed(1)
    assert a == (np.random.rand(), float(torch.rand(1)))
