"""Same-person retrieval scores: does a descriptor of one photo of a person find their other photo?

Two photos per person, ``A`` and ``B``. Each row of ``A`` queries every row of ``B`` (and the reverse); a query's
**rank** is the place of the person's own photo when the gallery is sorted by distance. Ties are broken at random
and the scores are their expectations under that draw, so a descriptor that cannot tell anyone apart (every
distance equal: the mean face) scores exactly chance: rank-1 ``1/N``, median rank ``(N + 1) / 2``, ROC AUC 0.5.
Persons with a missing photo (a ``NaN`` row: no face found) are left out of both sides and counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata


@dataclass(frozen=True)
class RetrievalScores:
    """Scores over ``n`` persons with both photos (``missing`` left out): ``rank1`` and ``top5`` (fractions of the
    queries, A->B and B->A averaged), ``median_rank`` (1 is best), ``auc`` (ROC AUC of same-person against
    different-person distances; ``nan`` when there is a single person)."""

    n: int
    missing: int
    rank1: float
    top5: float
    median_rank: float
    auc: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def euclidean_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, M]`` Euclidean distances between the rows of ``a [N, D]`` and ``b [M, D]`` (float64)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def query_ranks(distances: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query row ``i`` of a square ``distances [N, N]`` (the match on the diagonal): the count of gallery
    items strictly closer than the match, the count tied with it (the match itself excluded), and the expected rank
    ``closer + 1 + ties / 2`` under random tie-breaking."""
    distances = np.asarray(distances, np.float64)
    match = np.diag(distances)[:, None]
    off_diagonal = ~np.eye(len(distances), dtype=bool)
    closer = ((distances < match) & off_diagonal).sum(1)
    ties = ((distances == match) & off_diagonal).sum(1)
    return closer, ties, closer + 1.0 + ties / 2.0


def hit_rate(closer: np.ndarray, ties: np.ndarray, k: int) -> float:
    """Expected fraction of queries whose match is among the first ``k``: a query with ``closer`` items ahead and
    ``ties`` items tied lands uniformly at places ``closer + 1 .. closer + ties + 1``."""
    places = ties + 1.0
    inside = np.clip(k - closer, 0.0, places)
    return float(np.mean(inside / places))


def roc_auc(same: np.ndarray, different: np.ndarray) -> float:
    """Probability that a same-person distance is smaller than a different-person one (ties count one half): the ROC
    AUC of "same person" against the distance threshold. ``nan`` when either set is empty."""
    same, different = np.ravel(same).astype(np.float64), np.ravel(different).astype(np.float64)
    if same.size == 0 or different.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([same, different]))
    rank_sum = ranks[: same.size].sum() - same.size * (same.size + 1) / 2.0
    return float(1.0 - rank_sum / (same.size * different.size))


def retrieval_scores(a: np.ndarray, b: np.ndarray) -> RetrievalScores:
    """Scores of descriptors ``a [N, D]`` and ``b [N, D]`` (row ``i`` of both: person ``i``; a row with a ``NaN``
    is a missing photo) under Euclidean distance. ``ValueError`` for mismatched shapes or no complete pair."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"retrieval_scores: a and b must both be [N, D], got {list(a.shape)} and {list(b.shape)}")
    complete = ~(np.isnan(a).any(1) | np.isnan(b).any(1))
    return distance_scores(euclidean_distances(a[complete], b[complete]), missing=int((~complete).sum()))


def distance_scores(distances: np.ndarray, missing: int = 0) -> RetrievalScores:
    """Scores of a square ``distances [N, N]`` between the A photos (rows) and B photos (columns) of the same ``N``
    persons (so the matches lie on the diagonal); ``missing``: persons left out before."""
    distances = np.asarray(distances, np.float64)
    if distances.ndim != 2 or distances.shape[0] != distances.shape[1] or len(distances) == 0:
        raise ValueError(f"distance_scores: need a non-empty square distance matrix, got {list(distances.shape)}")
    n = len(distances)
    rank1 = top5 = 0.0
    ranks = []
    for matrix in (distances, distances.T):
        closer, ties, expected = query_ranks(matrix)
        rank1 += hit_rate(closer, ties, 1) / 2.0
        top5 += hit_rate(closer, ties, 5) / 2.0
        ranks.append(expected)
    off_diagonal = ~np.eye(n, dtype=bool)
    return RetrievalScores(
        n=n,
        missing=missing,
        rank1=rank1,
        top5=top5,
        median_rank=float(np.median(np.concatenate(ranks))),
        auc=roc_auc(np.diag(distances), distances[off_diagonal]),
    )
