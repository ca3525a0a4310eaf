"""Benchmark of the MICC evaluation on CPU: seconds per mesh pair and per template registration.

Run from the repository root with one thread: ``OMP_NUM_THREADS=1 .venv/bin/python bench/evaluate.py``.
Writes the ``evaluate`` section of BENCHMARKS.md. Meshes are procedural sphere heads of realistic size
(see fastganfit.geometry.procedural_meshes): a 49k-triangle scan, a 20k-triangle template.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
from common import time_call, write_section

from fastganfit.benchmarks.micc import register_scan
from fastganfit.benchmarks.micc_protocols import FaceMesh, micc_pair_error
from fastganfit.geometry.nicp import vertex_normals
from fastganfit.geometry.procedural_meshes import quadrupole_offset, random_similarity, sphere_head


def cpu_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Mean CPU seconds of this process per call of ``fn`` (what a busy machine's wall clock hides)."""
    start = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - start) / repeats


def main() -> None:
    """Time one registration (template onto scan) and one pair per protocol on the registered scan."""
    scan_vertices, scan_faces, scan_landmarks = sphere_head(radius=80.0, subdivisions=6, min_z=-0.2)
    scan_vertices = random_similarity(2).apply(scan_vertices)
    template_vertices, template_faces, template_landmarks = sphere_head(radius=80.0, subdivisions=5, min_z=-0.9)
    template_vertices = template_vertices * [1.1, 0.95, 0.9]
    template = (template_vertices, template_faces, template_landmarks)
    registration = None

    def register() -> None:
        nonlocal registration
        registration = register_scan(scan_vertices, scan_faces, scan_vertices[scan_landmarks], template)

    register_cpu = cpu_seconds(register, repeats=1)
    register_seconds = time_call(register, repeats=1, warmup=0)
    ground_truth = registration.mesh
    # The reconstruction: the template's topology, the registered shape with a 1 mm quadrupole offset, moved.
    offsets = quadrupole_offset(template_vertices, 1.0)
    offset = ground_truth.vertices + offsets[:, None] * vertex_normals(ground_truth.vertices, template_faces)
    nose = ground_truth.landmarks[30]
    inside = np.linalg.norm(ground_truth.vertices - nose, axis=1) < 95.0
    expected_mean, expected_rmse = np.abs(offsets[inside]).mean(), np.sqrt((offsets[inside] ** 2).mean())
    reconstruction = FaceMesh.with_landmark_vertices(
        random_similarity(1, max_angle_deg=10).apply(offset), template_faces, template_landmarks
    )
    rows, results = [], {}
    for protocol in ("ganfit", "deep3dface", "any_topology"):
        results[protocol] = micc_pair_error(reconstruction, ground_truth, protocol)
        pair = lambda p=protocol: micc_pair_error(reconstruction, ground_truth, p)  # noqa: E731
        seconds, cpu = time_call(pair, repeats=3, warmup=0), cpu_seconds(pair, repeats=3)
        rows.append(f"| MICC pair, `protocol={protocol}` | {len(template_faces):,} vs {len(template_faces):,} "
                    f"triangles | {seconds:.2f} | {cpu:.2f} | {results[protocol].error:.3f} mm, "
                    f"{results[protocol].icp_iterations} ICP steps |")  # fmt: skip
    load = os.getloadavg()[0]
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    body = f"""
| Step | Meshes | Wall seconds | CPU seconds | Result |
|---|---|---|---|---|
| Template registration (once per scan, cached): landmark similarity + non-rigid ICP | template {len(template_faces):,} onto scan {len(scan_faces):,} triangles | {register_seconds:.1f} | {register_cpu:.1f} | |
{chr(10).join(rows)}

OMP_NUM_THREADS={threads}; load average {load:.1f} when measured (the machine is shared: the wall clock includes
waiting for a core, the CPU seconds do not; a registration's linear solves are single-threaded). The reconstruction is
the registered scan with a 1 mm quadrupole offset along the normals: ganfit and any_topology expect about
{expected_mean:.3f} mm (the mean |offset| in the crop), deep3dface the RMSE, about {expected_rmse:.3f} mm. A full MICC run is 53 subjects x 3
settings x 2 frontal scans = 318 pairs plus 106 registrations (parallel over scans: `benchmark.workers`).
"""  # noqa: E501
    write_section("evaluate", body, "OMP_NUM_THREADS=1 .venv/bin/python bench/evaluate.py")
    print(body)


if __name__ == "__main__":
    main()
