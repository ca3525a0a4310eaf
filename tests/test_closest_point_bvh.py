"""The bounding-volume hierarchy's closest points equal brute force on a mesh of very unequal triangles."""

import numpy as np

from fastganfit.geometry.closest_point import TriangleMesh


def graded_sheet() -> tuple[np.ndarray, np.ndarray]:
    """A wavy 24 x 16 grid whose columns grow geometrically (cells 0.01 to 40 mm wide), plus 2 degenerate triangles."""
    xs = np.concatenate([[0.0], np.cumsum(0.01 * 1.45 ** np.arange(23))])
    ys = np.linspace(0.0, 30.0, 16)
    grid_x, grid_y = np.meshgrid(xs, ys, indexing="ij")
    z = 3.0 * np.sin(grid_x / 7.0) * np.cos(grid_y / 5.0)
    vertices = np.column_stack([grid_x.ravel(), grid_y.ravel(), z.ravel()])
    index = np.arange(vertices.shape[0]).reshape(xs.size, ys.size)
    a, b, c, d = index[:-1, :-1].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel(), index[:-1, 1:].ravel()
    faces = np.concatenate([np.column_stack([a, b, c]), np.column_stack([a, c, d]), [[0, 0, 1], [5, 5, 5]]])
    return vertices, faces


def test_hierarchy_equals_brute_force_on_unequal_triangles():
    vertices, faces = graded_sheet()
    sizes = np.linalg.norm(vertices[faces[:, 1]] - vertices[faces[:, 0]], axis=1)
    assert sizes[sizes > 0].max() / sizes[sizes > 0].min() > 1000
    rng = np.random.default_rng(0)
    edge_mid = vertices[faces[:, [0, 1]]].mean(1)
    points = np.vstack(
        [
            rng.uniform(vertices.min(0) - 5, vertices.max(0) + 5, (300, 3)),
            vertices + rng.normal(0, 0.02, vertices.shape),
            vertices,
            edge_mid + np.array([0.0, 0.0, 0.5]),
        ]
    )
    mesh = TriangleMesh(vertices, faces)
    found = mesh.closest_points(points)
    reference = mesh.brute_force(points)
    # Same arithmetic and tie rule (lowest triangle index) as the brute force: equal bit for bit.
    assert np.array_equal(found.distances, reference[1])
    assert np.array_equal(found.points, reference[0])
    assert np.array_equal(found.face_ids, reference[2])
    assert np.array_equal(found.barycentric, reference[3])
    assert found.distances.max() > 4.0 and (found.distances == 0).sum() >= vertices.shape[0]
