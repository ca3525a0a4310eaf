"""Same-person retrieval scores on hand-made cases with known answers."""

import numpy as np
import pytest

from fastganfit.benchmarks.retrieval import distance_scores, retrieval_scores, roc_auc


def test_perfect_descriptor_scores_one() -> None:
    a = np.eye(4) * 10.0
    scores = retrieval_scores(a, a + 0.1)
    assert (scores.n, scores.missing, scores.rank1, scores.top5, scores.median_rank, scores.auc) == (4, 0, 1, 1, 1, 1)


def test_all_ties_score_chance() -> None:
    scores = distance_scores(np.ones((8, 8)))
    assert scores.rank1 == pytest.approx(1 / 8)
    assert scores.top5 == pytest.approx(5 / 8)
    assert scores.median_rank == pytest.approx(4.5)
    assert scores.auc == pytest.approx(0.5)


def test_known_ranks_both_directions() -> None:
    distances = np.array([[2.0, 1.0, 5.0], [3.0, 0.5, 6.0], [4.0, 7.0, 0.1]])
    scores = distance_scores(distances)
    # A->B ranks: [2, 1, 1]; B->A (columns): B0 -> [2.0, 3.0, 4.0] rank 1, B1 -> [1.0, 0.5, 7.0] rank 1, B2 rank 1.
    assert scores.rank1 == pytest.approx((2 / 3 + 1) / 2)
    assert scores.median_rank == 1.0
    # same: 2, 0.5, 0.1; different: 1, 5, 3, 6, 4, 7 -> of 18 comparisons, 2 > 1 is the only loss
    assert scores.auc == pytest.approx(17 / 18)


def test_one_person_and_missing_photos() -> None:
    a = np.array([[0.0, 1.0], [np.nan, np.nan], [3.0, 3.0]])
    b = np.array([[0.0, 1.1], [1.0, 1.0], [np.nan, 0.0]])
    scores = retrieval_scores(a, b)
    assert (scores.n, scores.missing, scores.rank1, scores.median_rank) == (1, 2, 1.0, 1.0)
    assert np.isnan(scores.auc)


def test_partial_ties_and_bad_input() -> None:
    # the match ties with one of three others: rank-1 credit one half, top-5 full
    scores = distance_scores(np.array([[1.0, 1.0, 2.0, 2.0]] + [[2.0] * 4] * 3) + np.diag([0.0, -1.5, -1.5, -1.5]))
    assert scores.rank1 == pytest.approx((0.5 + 3) / 4 / 2 + 1 / 2 * 1)
    assert roc_auc([1.0], [1.0]) == 0.5
    with pytest.raises(ValueError, match="square"):
        distance_scores(np.ones((2, 3)))
    with pytest.raises(ValueError, match="a and b"):
        retrieval_scores(np.ones((2, 3)), np.ones((3, 3)))
