"""Mesh and landmark readers used by the evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from fastganfit.benchmarks.landmarks_io import landmark_points, read_ljson, read_picked_points, read_vertex_indices
from fastganfit.benchmarks.mesh_files import read_mesh
from fastganfit.geometry.mesh_crop import submesh
from fastganfit.io.mesh_export import write_obj

EXAMPLE_LJSON = Path(__file__).resolve().parents[2] / "shared" / "docs" / "micc-landmarks-example.ljson"


def test_obj_reader_triangulates_polygons_and_keeps_order(tmp_path):
    path = tmp_path / "quad.obj"
    path.write_text(
        "# comment\nmtllib x.mtl\nv 0 0 0\nv 1 0 0\nv 1 1 0 0.5 0.5 0.5\nv 0 1 0\nvt 0 0\nvn 0 0 1\n"
        "f 1/1/1 2/1/1 3/1/1 4/1/1\nf -4 -3 -1\n"
    )
    vertices, faces = read_mesh(path)
    assert vertices.shape == (4, 3) and vertices[2].tolist() == [1, 1, 0]
    assert faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 3]]
    assert faces.dtype == np.int64


def test_ply_and_npz_readers_round_trip(tmp_path):
    mesh = trimesh.creation.icosphere(subdivisions=1, radius=10.0)
    mesh.export(tmp_path / "sphere.ply")
    vertices, faces = read_mesh(tmp_path / "sphere.ply")
    assert np.allclose(vertices, mesh.vertices) and np.array_equal(faces, mesh.faces)
    np.savez(tmp_path / "sphere.npz", vertices=mesh.vertices, faces=mesh.faces)
    assert np.array_equal(read_mesh(tmp_path / "sphere.npz")[1], mesh.faces)
    write_obj(tmp_path / "sphere.obj", mesh.vertices, mesh.faces, dtype=np.float64)
    assert np.array_equal(read_mesh(tmp_path / "sphere.obj")[0], mesh.vertices)  # float64 digits round-trip


def test_mesh_reader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="mesh file not found"):
        read_mesh(tmp_path / "missing.obj")
    (tmp_path / "a.stl").write_text("solid")
    with pytest.raises(ValueError, match="unsupported mesh format"):
        read_mesh(tmp_path / "a.stl")
    (tmp_path / "bad.obj").write_text("v 0 0 0\nv 1 0 0\nf 1 2 3\n")
    with pytest.raises(ValueError, match="out of range"):
        read_mesh(tmp_path / "bad.obj")
    np.savez(tmp_path / "bad.npz", vertices=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="missing \\['faces'\\]"):
        read_mesh(tmp_path / "bad.npz")


def test_submesh_keeps_inner_faces():
    vertices = np.arange(15, dtype=float).reshape(5, 3)
    faces = np.array([[0, 1, 2], [1, 2, 3], [2, 3, 4]])
    kept_vertices, kept_faces = submesh(vertices, faces, np.array([False, True, True, True, False]))
    assert kept_vertices.shape == (3, 3) and kept_faces.tolist() == [[0, 1, 2]]


@pytest.mark.skipif(not EXAMPLE_LJSON.is_file(), reason="shared example landmark file not present")
def test_reads_published_micc_ljson_example():
    points = read_ljson(EXAMPLE_LJSON)
    assert points.shape == (68, 3)
    assert np.allclose(points[30], [7.841729563869449, -38.598477982486564, 10.178400615112764])


def test_ljson_versions_nulls_and_errors(tmp_path):
    v2 = tmp_path / "v2.ljson"
    v2.write_text(json.dumps({"version": 2, "landmarks": {"points": [[1, 2, 3], [4, 5, None]]}}))
    points = read_ljson(v2)
    assert points[0].tolist() == [1, 2, 3] and np.isnan(points[1, 2])
    with pytest.raises(ValueError, match="contains NaN"):
        landmark_points(v2, np.zeros((3, 3)), 2, "scan landmarks")
    (tmp_path / "bad.ljson").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_ljson(tmp_path / "bad.ljson")


def test_picked_points_and_plain_landmark_files(tmp_path):
    pp = tmp_path / "scan_picked_points.pp"
    pp.write_text(
        '<!DOCTYPE PickedPoints>\n<PickedPoints>\n <DocumentData>\n  <DataFileName name="s.obj"/>\n'
        ' </DocumentData>\n <point x="1" y="2" z="3" active="1" name="0"/>\n'
        ' <point y="5" x="4" z="6" active="1" name="1"/>\n</PickedPoints>\n'
    )
    assert read_picked_points(pp).tolist() == [[1, 2, 3], [4, 5, 6]]
    vertices = np.arange(30, dtype=float).reshape(10, 3)
    np.savetxt(tmp_path / "ids.txt", [9, 0, 4], fmt="%d")
    assert np.array_equal(landmark_points(tmp_path / "ids.txt", vertices, 3), vertices[[9, 0, 4]])
    np.save(tmp_path / "points.npy", vertices[:3] + 0.5)
    assert np.array_equal(landmark_points(tmp_path / "points.npy", vertices, 3), vertices[:3] + 0.5)
    with pytest.raises(ValueError, match="expected 4 vertex indices"):
        landmark_points(tmp_path / "ids.txt", vertices, 4)
    np.save(tmp_path / "far.npy", np.array([0, 1, 99]))
    with pytest.raises(ValueError, match="vertex indices outside"):
        landmark_points(tmp_path / "far.npy", vertices, 3)
    with pytest.raises(ValueError, match=r"template_landmarks=.* must hold 4 integer"):
        read_vertex_indices(tmp_path / "ids.txt", 4, "template_landmarks")
