"""Geometry core of the evaluation: closest points, Umeyama alignment, ICP."""

import numpy as np
import pytest
import trimesh

from fastganfit.geometry.alignment import SimilarityTransform, rigid_alignment, similarity_alignment, umeyama
from fastganfit.geometry.closest_point import TriangleMesh, brute_force_closest_points, closest_points_on_triangles
from fastganfit.geometry.icp import icp_points_to_surface, icp_surface_to_points
from fastganfit.geometry.nicp import vertex_normals
from fastganfit.geometry.procedural_meshes import icosphere, random_similarity


def ellipsoid(subdivisions: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Closed ellipsoid with a bump (no symmetry ICP could slide along), radii ~50 mm."""
    unit, faces = icosphere(subdivisions)
    bump = 1.0 + 0.25 * np.exp(-((unit - [0.3, 0.2, 0.93]) ** 2).sum(1) / 0.05)
    return unit * bump[:, None] * [60.0, 45.0, 40.0], faces


def trimesh_distances(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Independent reference: trimesh's point-triangle routine against every triangle."""
    triangles = vertices[faces]
    return np.array(
        [
            np.linalg.norm(
                trimesh.triangles.closest_point(triangles, np.repeat(p[None], len(faces), 0)) - p, axis=1
            ).min()
            for p in points
        ]
    )


def test_point_triangle_matches_trimesh_and_known_feature_points():
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(size=(3000, 3)) for _ in range(3))
    points = rng.normal(scale=2.0, size=(3000, 3))
    closest, bary = closest_points_on_triangles(points, a, b, c)
    reference = trimesh.triangles.closest_point(np.stack([a, b, c], 1), points)
    assert np.abs(closest - reference).max() < 1e-9
    assert np.allclose(bary.sum(1), 1.0) and bary.min() >= -1e-12
    # Points pushed outward from a corner (outside both adjacent edges' slabs) snap to that corner.
    tri = np.array([[0.0, 0, 0], [4, 0, 0], [0, 3, 0]])
    p = np.array([[-1.0, -2, 0.5], [5, -0.1, -1], [-0.2, 4, 2], [2, -1, 1], [1.0, 1.0, 3.0]])
    expected = np.array([[0.0, 0, 0], [4, 0, 0], [0, 3, 0], [2, 0, 0], [1.0, 1.0, 0]])
    got, _ = closest_points_on_triangles(p, *(np.repeat(tri[i][None], 5, 0) for i in range(3)))
    assert np.allclose(got, expected)


def test_mesh_index_equals_brute_force_including_edges_and_vertices():
    vertices, faces = ellipsoid(3)
    # Stretch some triangles so the index must subdivide large ones.
    vertices = vertices * np.where(vertices[:, :1] > 40, 1.6, 1.0)
    mesh = TriangleMesh(vertices, faces)
    rng = np.random.default_rng(1)
    normals = vertex_normals(vertices, faces)
    edges = faces[:, :2]
    edge_mid = vertices[edges].mean(1)
    edge_normal = normals[edges].sum(1)
    edge_normal /= np.linalg.norm(edge_normal, axis=1, keepdims=True)
    points = np.vstack(
        [
            rng.uniform(-120, 120, (300, 3)),
            vertices + rng.uniform(0.1, 8, (len(vertices), 1)) * normals,
            edge_mid + rng.uniform(0.1, 8, (len(edges), 1)) * edge_normal,
            vertices[faces].mean(1) + rng.normal(0, 0.3, (len(faces), 3)),
        ]
    )
    found = mesh.closest_points(points)
    reference = brute_force_closest_points(points, vertices, faces)
    print(
        f"index vs brute force: {len(points)} points, max |d| difference "
        f"{np.abs(found.distances - reference.distances).max():.2e} mm"
    )
    assert np.abs(found.distances - reference.distances).max() < 1e-9
    assert np.abs(found.points - reference.points).max() < 1e-6
    independent = trimesh_distances(points[::40], vertices, faces)
    assert np.abs(found.distances[::40] - independent).max() < 1e-9
    assert np.allclose((found.barycentric[:, :, None] * vertices[faces[found.face_ids]]).sum(1), found.points)


def test_mesh_index_rejects_bad_input():
    vertices, faces = ellipsoid(1)
    with pytest.raises(ValueError, match="faces must have shape"):
        TriangleMesh(vertices, faces[:, :2])
    with pytest.raises(ValueError, match="outside"):
        TriangleMesh(vertices, faces + len(vertices))
    with pytest.raises(ValueError, match="NaN"):
        TriangleMesh(np.where(vertices > 50, np.nan, vertices), faces)


def test_umeyama_recovers_similarity_and_rigid():
    rng = np.random.default_rng(2)
    source = rng.normal(size=(50, 3)) * 30
    truth = random_similarity(5, scale=1.7, max_angle_deg=170)
    found = similarity_alignment(source, truth.apply(source))
    assert abs(found.scale - 1.7) < 1e-12
    assert np.allclose(found.rotation, truth.rotation) and np.allclose(found.translation, truth.translation)
    assert np.allclose(found.inverse().apply(found.apply(source)), source)
    rigid = rigid_alignment(source, truth.apply(source))
    assert rigid.scale == 1.0 and np.isclose(np.linalg.det(rigid.rotation), 1.0)
    mirrored = source * [-1, 1, 1]
    assert np.linalg.det(umeyama(source, mirrored).rotation) > 0
    with pytest.raises(ValueError, match="at least 3"):
        umeyama(source[:2], source[:2])
    with pytest.raises(ValueError, match="must have 50 points"):
        umeyama(source, source[:10])


def test_similarity_icp_on_transformed_copy_gives_zero():
    vertices, faces = ellipsoid(3)
    surface = TriangleMesh(vertices, faces)
    truth = random_similarity(7, scale=1.08, max_angle_deg=12)
    truth = SimilarityTransform(truth.scale, truth.rotation, truth.translation / 20)
    moved = truth.apply(vertices)
    before = surface.distances(moved).mean()
    result = icp_points_to_surface(moved, surface, scale=True, tolerance=1e-6, max_iterations=200)
    print(f"similarity ICP on a transformed copy: {before:.3f} -> {result.mean_distance:.5f} mm")
    assert before > 3.0
    assert result.mean_distance < 0.01
    assert abs(result.transform.scale * truth.scale - 1.0) < 1e-4
    assert np.all(np.diff(result.history) < 0)
    default = icp_points_to_surface(moved, surface, scale=True)
    assert default.mean_distance < 0.05
    assert default.history[-2] - default.history[-1] < 1e-3 or default.iterations == 100
    # The mesh-moving variant recovers the inverse problem.
    inverse = icp_surface_to_points(surface, moved, scale=True, tolerance=1e-6, max_iterations=200)
    assert inverse.mean_distance < 0.01
    assert np.allclose(inverse.transform.apply(vertices), moved, atol=0.1)


def test_rigid_icp_on_rigidly_moved_copy_gives_zero():
    vertices, faces = ellipsoid(3)
    truth = random_similarity(8, max_angle_deg=10)
    moved = SimilarityTransform(1.0, truth.rotation, truth.translation / 25).apply(vertices)
    result = icp_points_to_surface(
        moved, TriangleMesh(vertices, faces), scale=False, tolerance=1e-6, max_iterations=200
    )
    print(f"rigid ICP on a rigidly moved copy: {result.history[0]:.3f} -> {result.mean_distance:.5f} mm")
    assert result.history[0] > 1.0
    assert result.mean_distance < 0.02 and result.transform.scale == 1.0  # point-to-point ICP converges linearly


def test_offset_along_normals_gives_one_millimetre():
    vertices, faces = ellipsoid(3)
    offset = vertices + vertex_normals(vertices, faces)
    original, shifted = TriangleMesh(vertices, faces), TriangleMesh(offset, faces)
    forward, backward = original.distances(offset).mean(), shifted.distances(vertices).mean()
    print(f"offset 1 mm: forward {forward:.4f} backward {backward:.4f}")
    assert abs(forward - 1.0) < 0.02 and abs(backward - 1.0) < 0.02
    # On a closed surface rigid ICP cannot remove a normal offset...
    rigid = icp_points_to_surface(offset, original, scale=False)
    assert abs(rigid.mean_distance - 1.0) < 0.03
    # ...while similarity ICP absorbs part of it as a scale change.
    similar = icp_points_to_surface(offset, original, scale=True)
    assert similar.mean_distance < 0.8 * rigid.mean_distance and similar.transform.scale < 1.0


def test_icp_rejects_bad_options():
    vertices, faces = ellipsoid(1)
    surface = TriangleMesh(vertices, faces)
    with pytest.raises(ValueError, match="tolerance"):
        icp_points_to_surface(vertices, surface, tolerance=-1.0)
    with pytest.raises(ValueError, match="max_iterations"):
        icp_points_to_surface(vertices, surface, max_iterations=0)
    with pytest.raises(ValueError, match=r"points must have shape \[N, 3\]"):
        icp_points_to_surface(vertices[:, :2], surface)
