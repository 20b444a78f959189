"""The per-block latency table of `prune.resource: latency`: monotone rows, additivity against
whole-model timings of pruned tiny models, and an env whose budget is milliseconds."""

import numpy as np
import pytest
import torch

from rcskd.prune.apply import prune_blocks, remaining
from rcskd.prune.blocks import LATENCY_FRACTIONS
from rcskd.prune.env import PruningEnv, make_units
from rcskd.prune.latency import measure_latency_table, median_ms, predicted_ms, with_latency
from rcskd.prune.search import search_uniform
from tests.prune.test_env_search import SHAPE, setting  # noqa: F401  (the shared tiny ResNet)


@pytest.fixture(scope="module")
def measured(setting):  # noqa: F811
    model, blocks, _ = setting
    table = measure_latency_table(model, blocks, SHAPE, batch_size=1, threads=1, repeats=15,
                                  show_progress=False)  # fmt: skip
    return model, blocks, table


def test_every_block_has_a_monotone_row_over_the_kept_fractions(measured):
    _, blocks, table = measured
    assert table["fractions"] == list(LATENCY_FRACTIONS) and table["threads"] == 1
    assert set(table["blocks"]) == {b.name for b in blocks}
    for row in table["blocks"].values():
        assert len(row) == len(LATENCY_FRACTIONS) and all(v > 0 for v in row)
        assert row == sorted(row)  # fewer channels never cost more
    assert 0 <= table["rest_ms"] < table["whole_ms"]


def share_errors(model, blocks, rng) -> list[float]:
    """|predicted - measured| latency share of the unpruned model, for 4 random candidates,
    with a freshly measured table and interleaved timings (machine load cancels out)."""
    table = measure_latency_table(model, blocks, SHAPE, 1, 1, 15, show_progress=False)
    torch.set_num_threads(1)
    x = torch.zeros(1, *SHAPE)
    errors = []
    for _ in range(4):
        ratios = {b.name: float(rng.uniform(0.0, 0.8)) for b in blocks}
        pruned = prune_blocks(model, blocks, ratios, SHAPE).eval()
        whole, cut = [], []
        for _ in range(5):
            whole.append(median_ms(lambda: model(x), 10))
            cut.append(median_ms(lambda p=pruned: p(x), 10))
        share = float(np.median(cut) / np.median(whole))
        errors.append(abs(predicted_ms(blocks, ratios, table) / table["whole_ms"] - share))
    return errors


def test_the_table_adds_up_to_the_measured_latency_of_pruned_models(measured):
    """Predicted (rest + each block at its kept share) against whole pruned models timed alone:
    mean error of the share under 0.1 (measured here on a quiet machine: under 0.02). Timing on
    a shared machine is noisy, so up to 5 attempts, each with a fresh table."""
    model, blocks, _ = measured
    rng = np.random.default_rng(0)
    attempts = []
    while len(attempts) < 5 and min(attempts, default=1.0) >= 0.1:
        attempts.append(float(np.mean(share_errors(model, blocks, rng))))
    assert min(attempts) < 0.1, attempts


def test_a_latency_budget_is_met_in_milliseconds(measured):
    """On a fixed table (no timing noise): every block takes 1 ms at full width, linearly less
    when pruned, the rest 1 ms."""
    _, blocks, _ = measured
    table = {"rest_ms": 1.0,
             "blocks": {b.name: [0.1 * (i + 1) for i in range(10)] for b in blocks}}  # fmt: skip
    priced = with_latency(blocks, table)
    total = table["rest_ms"] + sum(b.latency_at(1.0) for b in priced)
    env = PruningEnv(make_units(priced, "block"), total, 0.7, "latency", 0.9, lambda r: 1.0)
    result = search_uniform(env)
    ratios = result.ratios
    kept = remaining(priced, ratios, total, "latency") / total
    assert kept == pytest.approx(0.7, abs=0.03)
    assert predicted_ms(blocks, ratios, table) / total == pytest.approx(kept, abs=1e-6)
