"""A bounding-volume hierarchy over triangles and its exact closest-point query (compiled with numba).

Hand-written rather than a library because the query must equal the brute-force reference bit for bit:
each candidate triangle is measured with the same float64 operations, in the same order, as
:func:`fastganfit.geometry.closest_point.closest_points_on_triangles`, ties go to the lowest triangle
index (as ``argmin`` over all triangles), and a box is skipped only when its distance exceeds the best
one by more than rounding. Measured on the ICT face (18,460 triangles from 0.2 to 6 mm across), 9,409
queries: 0.03 CPU s against 1.26 s for the k-d tree over triangle samples this replaced, whose one
global slack (set by the largest triangle) left most queries uncertified at the first try.
"""

from __future__ import annotations

import numba
import numpy as np

LEAF_SIZE = 4
#: A box is skipped when its squared distance exceeds the best one by this relative margin (rounding).
PRUNE_MARGIN = 1e-9


@numba.njit(cache=True)
def build_bvh(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Median-split hierarchy of triangles ``corners [F, 3, 3]``.

    Returns ``order [F]`` (triangle ids, each leaf's a contiguous run), ``lower [N, 3]`` and ``upper [N, 3]``
    (node boxes) and ``links [N, 3]``: ``(left child, right child, -1)`` for an inner node (node 0: the
    root), ``(start in order, -1, count)`` for a leaf.
    """
    num_faces = corners.shape[0]
    centroids = (corners[:, 0] + corners[:, 1] + corners[:, 2]) / 3.0
    order = np.arange(num_faces)
    capacity = 2 * num_faces
    lower = np.empty((capacity, 3))
    upper = np.empty((capacity, 3))
    links = np.full((capacity, 3), -1, dtype=np.int64)
    ranges = np.empty((capacity, 2), dtype=np.int64)
    ranges[0, 0], ranges[0, 1] = 0, num_faces
    stack = np.empty(capacity, dtype=np.int64)
    stack[0] = 0
    depth, count = 1, 1
    while depth > 0:
        depth -= 1
        node = stack[depth]
        start, stop = ranges[node, 0], ranges[node, 1]
        for axis in range(3):
            lower[node, axis] = np.inf
            upper[node, axis] = -np.inf
        centre_low = np.full(3, np.inf)
        centre_high = np.full(3, -np.inf)
        for i in range(start, stop):
            face = order[i]
            for axis in range(3):
                for corner in range(3):
                    value = corners[face, corner, axis]
                    lower[node, axis] = min(lower[node, axis], value)
                    upper[node, axis] = max(upper[node, axis], value)
                centre_low[axis] = min(centre_low[axis], centroids[face, axis])
                centre_high[axis] = max(centre_high[axis], centroids[face, axis])
        if stop - start <= LEAF_SIZE:
            links[node, 0], links[node, 1], links[node, 2] = start, -1, stop - start
            continue
        axis = int(np.argmax(centre_high - centre_low))
        ids = order[start:stop].copy()
        ranked = np.argsort(centroids[ids, axis], kind="mergesort")
        order[start:stop] = ids[ranked]
        middle = (start + stop) // 2
        left, right = count, count + 1
        count += 2
        ranges[left, 0], ranges[left, 1] = start, middle
        ranges[right, 0], ranges[right, 1] = middle, stop
        links[node, 0], links[node, 1], links[node, 2] = left, right, -1
        stack[depth] = left
        stack[depth + 1] = right
        depth += 2
    return order, lower[:count].copy(), upper[:count].copy(), links[:count].copy()


@numba.njit(cache=True, inline="always")
def _box_distance2(point: np.ndarray, lower: np.ndarray, upper: np.ndarray, node: int) -> float:
    total = 0.0
    for axis in range(3):
        gap = max(lower[node, axis] - point[axis], 0.0, point[axis] - upper[node, axis])
        total += gap * gap
    return total


@numba.njit(cache=True)
def _closest_on_triangle(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray, bary: np.ndarray) -> float:
    """Squared distance from ``p`` to triangle ``abc``, its barycentric weights written to ``bary [3]``.

    The operations of ``closest_points_on_triangles`` one query at a time, in the same order.
    """
    ab0, ab1, ab2 = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    ac0, ac1, ac2 = c[0] - a[0], c[1] - a[1], c[2] - a[2]
    n0 = ab1 * ac2 - ab2 * ac1
    n1 = ab2 * ac0 - ab0 * ac2
    n2 = ab0 * ac1 - ab1 * ac0
    norm2 = n0 * n0 + n1 * n1 + n2 * n2
    ap0, ap1, ap2 = p[0] - a[0], p[1] - a[1], p[2] - a[2]
    inside = False
    u = v = w = 0.0
    if norm2 > 0:
        v = ((ap1 * ac2 - ap2 * ac1) * n0 + (ap2 * ac0 - ap0 * ac2) * n1 + (ap0 * ac1 - ap1 * ac0) * n2) / norm2
        w = ((ab1 * ap2 - ab2 * ap1) * n0 + (ab2 * ap0 - ab0 * ap2) * n1 + (ab0 * ap1 - ab1 * ap0) * n2) / norm2
        u = 1.0 - v - w
        inside = u >= 0 and v >= 0 and w >= 0
    if inside:
        bary[0], bary[1], bary[2] = u, v, w
    else:
        best_edge, best_d2, best_t = 0, np.inf, 0.0
        for edge in range(3):
            x = a if edge == 0 else (b if edge == 1 else c)
            y = b if edge == 0 else (c if edge == 1 else a)
            d0, d1, d2 = y[0] - x[0], y[1] - x[1], y[2] - x[2]
            length2 = d0 * d0 + d1 * d1 + d2 * d2
            t = 0.0
            if length2 > 0:
                t = ((p[0] - x[0]) * d0 + (p[1] - x[1]) * d1 + (p[2] - x[2]) * d2) / length2
            t = min(max(t, 0.0), 1.0)
            q0, q1, q2 = p[0] - (x[0] + t * d0), p[1] - (x[1] + t * d1), p[2] - (x[2] + t * d2)
            distance2 = q0 * q0 + q1 * q1 + q2 * q2
            if distance2 < best_d2:
                best_edge, best_d2, best_t = edge, distance2, t
        bary[0] = bary[1] = bary[2] = 0.0
        bary[best_edge] = 1.0 - best_t
        bary[(best_edge + 1) % 3] = best_t
    total = 0.0
    for axis in range(3):
        closest = bary[0] * a[axis] + bary[1] * b[axis] + bary[2] * c[axis]
        gap = p[axis] - closest
        total += gap * gap
    return total


@numba.njit(cache=True)
def query_bvh(
    points: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    order: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    links: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact closest points of ``points [N, 3]`` on the mesh ``vertices [V, 3]``, ``faces [F, 3]``.

    Returns ``closest [N, 3]``, ``distances [N]``, ``face_ids [N]`` and ``barycentric [N, 3]``.
    """
    n = points.shape[0]
    closest = np.empty((n, 3))
    distances = np.empty(n)
    face_ids = np.empty(n, dtype=np.int64)
    barycentric = np.empty((n, 3))
    stack = np.empty(2 * links.shape[0] + 1, dtype=np.int64)
    bary = np.empty(3)
    for i in range(n):
        p = points[i]
        best, best_face = np.inf, -1
        best_bary = np.zeros(3)
        stack[0] = 0
        depth = 1
        while depth > 0:
            depth -= 1
            node = stack[depth]
            if _box_distance2(p, lower, upper, node) > best * (1.0 + PRUNE_MARGIN):
                continue
            if links[node, 2] >= 0:
                start = links[node, 0]
                for slot in range(start, start + links[node, 2]):
                    face = order[slot]
                    distance2 = _closest_on_triangle(
                        p, vertices[faces[face, 0]], vertices[faces[face, 1]], vertices[faces[face, 2]], bary
                    )
                    if distance2 < best or (distance2 == best and face < best_face):
                        best, best_face = distance2, face
                        best_bary[:] = bary
                continue
            left, right = links[node, 0], links[node, 1]
            if _box_distance2(p, lower, upper, left) <= _box_distance2(p, lower, upper, right):
                left, right = right, left
            stack[depth] = left
            stack[depth + 1] = right
            depth += 2
        a, b, c = vertices[faces[best_face, 0]], vertices[faces[best_face, 1]], vertices[faces[best_face, 2]]
        for axis in range(3):
            closest[i, axis] = best_bary[0] * a[axis] + best_bary[1] * b[axis] + best_bary[2] * c[axis]
        distances[i] = np.sqrt(best)
        face_ids[i] = best_face
        barycentric[i] = best_bary
    return closest, distances, face_ids, barycentric
