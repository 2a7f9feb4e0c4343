"""PROBELESS by sort + prefix sums equals the pairwise formula, ties included; Jaccard helper."""

from __future__ import annotations

import numpy as np
import pytest

from factroots.probe import probeless as pl
from factroots.probe.overlap import jaccard_rows


def _brute_top(acts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    return pl.reference_top_k(pl.pairwise_scores(acts), k)


@pytest.mark.parametrize("n,d", [(2, 7), (3, 50), (17, 300), (64, 1000)])
def test_scores_equal_pairwise_formula_on_random_data(n: int, d: int) -> None:
    acts = np.random.default_rng(n).normal(size=(n, d)).astype(np.float32)
    np.testing.assert_allclose(pl.probeless_scores(acts), pl.pairwise_scores(acts), rtol=1e-12,
                               atol=1e-12)


def test_scores_match_a_hand_computed_example() -> None:
    acts = np.array([[0.0], [1.0], [3.0]])
    # fact 0: (1 + 3) / 2, fact 1: (1 + 2) / 2, fact 2: (3 + 2) / 2
    np.testing.assert_allclose(pl.probeless_scores(acts)[:, 0], [2.0, 1.5, 2.5])


def test_single_fact_scores_zero() -> None:
    assert pl.probeless_scores(np.ones((1, 4))).tolist() == [[0.0] * 4]


@pytest.mark.parametrize("seed", range(4))
def test_ranking_equals_brute_force_on_random_data(seed: int) -> None:
    acts = np.random.default_rng(seed).normal(size=(40, 700)).astype(np.float32)
    got = pl.rank_group(acts, k=100, chunk=64)
    ids, sc = _brute_top(acts, 100)
    assert np.array_equal(got.neuron_ids, ids)
    np.testing.assert_allclose(got.scores.astype(np.float64), sc, rtol=1e-3)
    assert got.neuron_ids.dtype == np.int32 and got.scores.dtype == np.float16


@pytest.mark.parametrize("seed", range(4))
def test_ranking_equals_brute_force_with_many_ties(seed: int) -> None:
    # Few distinct small integers: many exactly equal scores, also across chunk borders.
    rng = np.random.default_rng(100 + seed)
    acts = rng.integers(0, 3, size=(9, 500)).astype(np.float32)
    acts[:, 200:260] = acts[:, :60]  # duplicated neurons tie exactly
    got = pl.rank_group(acts, k=100, chunk=37)
    ids, _ = _brute_top(acts, 100)
    assert np.array_equal(got.neuron_ids, ids)


def test_ties_are_broken_by_smallest_neuron_id() -> None:
    acts = np.zeros((4, 10), np.float32)
    acts[0, [3, 7, 8]] = 1.0  # fact 0 differs from the others on neurons 3, 7, 8 equally
    got = pl.rank_group(acts, k=5)
    assert got.neuron_ids[0].tolist() == [3, 7, 8, 0, 1]


def test_chunked_ranking_equals_unchunked() -> None:
    acts = np.random.default_rng(7).normal(size=(30, 999))
    a, b = pl.rank_group(acts, k=50, chunk=10), pl.rank_group(acts, k=50, chunk=5000)
    assert np.array_equal(a.neuron_ids, b.neuron_ids)


def test_top_k_capped_by_neuron_count() -> None:
    got = pl.rank_group(np.random.default_rng(1).normal(size=(5, 8)), k=100)
    assert got.neuron_ids.shape == (5, 8)
    assert sorted(got.neuron_ids[0].tolist()) == list(range(8))


@pytest.mark.parametrize("n", [0, 1, 2])
def test_small_group_is_flagged_with_empty_lists(n: int) -> None:
    got = pl.rank_group(np.ones((n, 20)), k=10, min_group=3)
    assert got.small_group and got.group_size == n
    assert got.neuron_ids.shape == (n, 0)


def test_group_at_min_size_is_ranked() -> None:
    got = pl.rank_group(np.random.default_rng(2).normal(size=(3, 20)), k=10, min_group=3)
    assert not got.small_group and got.neuron_ids.shape == (3, 10)


def test_running_top_k_resumes_from_state_dict() -> None:
    scores = np.random.default_rng(3).normal(size=(6, 400))
    whole = pl.RunningTopK(6, 20)
    for lo in range(0, 400, 50):
        whole.add(scores[:, lo:lo + 50], offset=lo)
    first = pl.RunningTopK(6, 20)
    for lo in range(0, 200, 50):
        first.add(scores[:, lo:lo + 50], offset=lo)
    resumed = pl.RunningTopK(1, 1)
    resumed.load_state_dict(first.state_dict())
    for lo in range(200, 400, 50):
        resumed.add(scores[:, lo:lo + 50], offset=lo)
    assert np.array_equal(resumed.ids, whole.ids)
    assert np.array_equal(resumed.ids, pl.reference_top_k(scores, 20)[0])


def test_float16_scores_saturate_instead_of_overflowing() -> None:
    acts = np.zeros((3, 2))
    acts[0, 0] = 1e6
    assert np.isfinite(pl.rank_group(acts, k=2).scores).all()


def test_jaccard_rows_counts_shared_ids() -> None:
    a = np.array([[1, 2, 3, 4], [1, 2, 3, 4], [5, 6, 7, 8]])
    b = np.array([[4, 3, 2, 1], [3, 4, 9, 10], [1, 2, 3, 0]])
    np.testing.assert_allclose(jaccard_rows(a, b), [1.0, 2 / 6, 0.0])


def test_jaccard_rows_matches_python_sets_on_random_sets() -> None:
    rng = np.random.default_rng(5)
    a = np.stack([rng.choice(120, 50, replace=False) for _ in range(30)])
    b = np.stack([rng.choice(120, 50, replace=False) for _ in range(30)])
    want = [len(set(x) & set(y)) / len(set(x) | set(y)) for x, y in zip(a, b)]
    np.testing.assert_allclose(jaccard_rows(a, b), want)
    # with top-50 sets, J = s / (100 - s)
    s = np.array([len(set(x) & set(y)) for x, y in zip(a, b)])
    np.testing.assert_allclose(jaccard_rows(a, b), s / (100 - s))


def test_jaccard_rows_ignores_padding_and_gives_nan_for_two_empty_sets() -> None:
    a = np.array([[1, 2, -1], [-1, -1, -1]])
    b = np.array([[2, -1, -1], [-1, -1, -1]])
    got = jaccard_rows(a, b)
    assert got[0] == pytest.approx(0.5) and np.isnan(got[1])


def test_scores_are_bitwise_independent_of_fact_order_and_equal_for_tied_facts() -> None:
    rng = np.random.default_rng(11)
    acts = rng.integers(0, 4, size=(50, 300)).astype(np.float32) * np.float32(0.1)
    perm = rng.permutation(50)
    base = pl.probeless_scores(acts)
    assert np.array_equal(pl.probeless_scores(acts[perm]), base[perm])
    same = acts[:, 0] == acts[0, 0]  # facts tied with fact 0 on neuron 0 score the same there
    assert len(set(base[same, 0].tolist())) == 1
