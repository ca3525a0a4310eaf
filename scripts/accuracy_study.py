"""Which signals carry shape: per-image fitting of held-out synthetic faces with each loss term alone and in
GANFit's combination, with the true texture and light given (oracle) or fitted; see docs/accuracy.md.

    OMP_NUM_THREADS=1 python scripts/accuracy_study.py --faces 4 --steps 60 --output outputs/accuracy
    OMP_NUM_THREADS=1 python scripts/accuracy_study.py --ckpt outputs/train/<run>/align/checkpoints/last.ckpt

Starts: GANFit (the mean face under the landmark camera) and, with ``--ckpt``, GANFit++ (the checkpoint's
regression). Each setting optimises shape, expression and camera (plus texture and light when fitted) with Adam
for ``--steps`` steps. Reported per setting: the similarity-aligned vertex error (mm, corresponding vertices) and
the MICC protocol's error (mm), as means over the faces; ``error_maps.png`` draws each setting's mean per-vertex
error (after the similarity alignment) on the mean face. Writes ``results.md`` and ``results.json`` too.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tqdm import tqdm

from fastganfit.benchmarks.figures import error_colours, error_map_grid
from fastganfit.benchmarks.micc import micc_pair_error
from fastganfit.benchmarks.synthetic import SIDE_VIEW_YAW, batches, sample_tensors
from fastganfit.data.synthetic import SyntheticFaceSource
from fastganfit.fitting.optimise import mean_face_start, refine, regress
from fastganfit.fitting.settings import FitSettings, StageSettings
from fastganfit.io.atomic import write_files_atomically
from fastganfit.io.images import save_png
from fastganfit.params import FaceParams
from fastganfit.reconstruction.losses import GANFitLoss
from fastganfit.reconstruction.supervised import vertex_loss
from fastganfit.reconstruction.vertex_error import similarity_align
from fastganfit.regression.checkpoint import build_fast_ganfit_module, load_fast_ganfit
from fastganfit.render.vertex_colours import render_vertex_colours

CONF = Path(__file__).resolve().parents[1] / "fastganfit" / "conf"
REGULARISERS = {"shape": 0.003, "expression": 0.003}
#: Loss weights of each setting: each term alone (with the weak shape and expression priors), and GANFit's
#: combination as conf/loss/fast_full.yaml sets it.
SETTINGS: dict[str, dict[str, float]] = {
    "landmark": {"landmark": 1.0, **REGULARISERS},
    "identity": {"identity": 10.0, **REGULARISERS},
    "content": {"content": 0.2, **REGULARISERS},
    "pixel": {"pixel": 1.0, **REGULARISERS},
    "landmark + identity": {"landmark": 2.0, "identity": 10.0, **REGULARISERS},
    "GANFit (fast_full)": {"identity": 10.0, "content": 0.2, "pixel": 1.0, "landmark": 2.0, **REGULARISERS},
}
SEED = 7  # held out: apart from training (0), validation (1) and the synthetic benchmark (2026)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=4, help="held-out synthetic faces (seed 7)")
    parser.add_argument("--steps", type=int, default=60, help="Adam steps per fit")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (conf/fit/ganfit.yaml's full stage)")
    parser.add_argument("--ckpt", default=None, help="a train.py checkpoint: adds GANFit++ rows and sets the graph")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), help=f"subset of {list(SETTINGS)}")
    parser.add_argument("--output", default="outputs/accuracy", help="folder for results.md/json, error_maps.png")
    parser.add_argument(
        "--gradients",
        action="store_true",
        help="instead of fitting: the cosine between each term's shape gradient and the true vertex error's",
    )
    arguments = parser.parse_args(argv)
    unknown = sorted(set(arguments.settings) - set(SETTINGS))
    if unknown:
        parser.error(f"--settings: unknown {unknown}; choose from {list(SETTINGS)}")
    if arguments.faces < 1 or arguments.steps < 1:
        parser.error("--faces and --steps must be positive")
    return arguments


def demo_module(ckpt: str | None) -> torch.nn.Module:
    """The checkpoint's module, or an untrained one with the demo's components (112 px, dlib, procedural)."""
    if ckpt:
        return load_fast_ganfit(ckpt, "cpu")
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=demo", "run_dir=outputs/accuracy"])
    return build_fast_ganfit_module(OmegaConf.to_container(cfg.model, resolve=True), "cpu")


def fit(graph, crops, landmarks, start: FaceParams, weights: dict[str, float], oracle: bool, steps: int, lr: float):
    """Vertices ``[B, V, 3]`` after optimising ``start`` with ``weights`` (oracle: texture and light stay)."""
    groups = ("shape", "expression", "camera") if oracle else ("shape", "expression", "camera", "texture", "light")
    stage = StageSettings("fit", steps, lr, groups, GANFitLoss(**weights))
    params, _ = refine(graph, crops, landmarks, start, FitSettings((stage,)))
    with torch.no_grad():
        return graph.model(params.shape, params.expression)


GRADIENT_TERMS = ("landmark", "identity", "content", "pixel")


def shape_gradient(graph, target, start: FaceParams, loss) -> torch.Tensor:
    """``d loss / d shape`` ``[B, Ks]`` at ``start`` (``loss``: FaceParams, Reconstruction -> per-face total)."""
    shape = start.shape.detach().clone().requires_grad_(True)
    params = replace(start, shape=shape)
    (gradient,) = torch.autograd.grad(loss(params, graph.render(params, target)), shape)
    return gradient


def gradient_agreement(graph, crops, landmarks, truth, starts: dict[str, FaceParams]) -> str:
    """A markdown table: per start, the mean over faces of ``cos(grad_shape term, grad_shape true error)`` for each
    term of :data:`GRADIENT_TERMS` (1: the term pulls the shape straight towards the truth; 0: sideways)."""
    target = graph.target(crops, landmarks)
    lines = ["| start | " + " | ".join(GRADIENT_TERMS) + " |", "|---|" + "---|" * len(GRADIENT_TERMS)]
    for name, start in starts.items():
        true = shape_gradient(graph, target, start, lambda _, result: vertex_loss(result.vertices, truth, True).sum())
        cells = []
        for term in GRADIENT_TERMS:
            loss = GANFitLoss(**{term: 1.0})
            gradient = shape_gradient(
                graph, target, start, lambda _, result, loss=loss: graph.objective(result, loss)[0]
            )
            cells.append(f"{float(torch.nn.functional.cosine_similarity(gradient, true, dim=1).mean()):+.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    torch.manual_seed(0)
    module = demo_module(arguments.ckpt)
    graph = module.graph
    source = SyntheticFaceSource(SEED, graph.crop_size)
    faces = graph.model.faces.numpy()
    starts = ["GANFit"] + (["GANFit++"] if arguments.ckpt else [])
    rows: dict[str, dict[str, list]] = {}
    samples = next(batches(source, arguments.faces, arguments.faces))
    crops, landmarks, truth = sample_tensors(samples, torch.device("cpu"))
    true_params = {
        name: torch.stack([torch.from_numpy(s["params"][name]) for s in samples]) for name in ("texture", "light")
    }
    gt_landmarks = graph.model.landmarks(truth)

    def record(name: str, vertices: torch.Tensor) -> None:
        aligned = similarity_align(vertices.double(), truth.double()).float()
        per_vertex = torch.linalg.vector_norm(aligned - truth, dim=-1)
        predicted_landmarks = graph.model.landmarks(vertices)
        micc = [
            micc_pair_error(
                truth[k].numpy(),
                faces,
                gt_landmarks[k].numpy(),
                vertices[k].numpy(),
                faces,
                predicted_landmarks[k].numpy(),
            ).symmetric
            for k in range(vertices.shape[0])
        ]
        rows[name] = {
            "vertex_similarity_mm": per_vertex.mean(1).tolist(),
            "micc_mm": micc,
            "per_vertex": per_vertex.mean(0).numpy(),
        }

    with torch.no_grad():
        regressed = regress(module, crops, landmarks) if arguments.ckpt else None
    if arguments.gradients:
        starts = {"mean face": mean_face_start(graph, crops, landmarks)}
        if regressed is not None:
            starts["regression"] = regressed
        starts = {
            **{f"{name}, oracle": replace(start, **true_params) for name, start in starts.items()},
            **{f"{name}, mean texture and light": start for name, start in starts.items()},
        }
        print(gradient_agreement(graph, crops, landmarks, truth, starts))
        return 0
    record("mean face", graph.model.mean_vertices(arguments.faces))
    if regressed is not None:
        record("regression", graph.model(regressed.shape, regressed.expression))
    jobs = [(start, setting, oracle) for start in starts for setting in arguments.settings for oracle in (True, False)]
    for start, setting, oracle in tqdm(jobs, desc="accuracy study", unit="fit", file=sys.stderr):
        initial = mean_face_start(graph, crops, landmarks) if start == "GANFit" else regressed
        if oracle:
            initial = replace(initial, **true_params)
        vertices = fit(graph, crops, landmarks, initial, SETTINGS[setting], oracle, arguments.steps, arguments.lr)
        record(f"{start}: {setting}, {'oracle' if oracle else 'fitted'}", vertices)

    output = Path(arguments.output)
    output.mkdir(parents=True, exist_ok=True)
    baseline = float(np.mean(rows["mean face"]["vertex_similarity_mm"]))
    lines = [
        f"{arguments.faces} held-out synthetic faces (seed {SEED}, {graph.crop_size} px), {arguments.steps} Adam steps "
        f"at lr {arguments.lr}",
        "",
        "| setting | vertex error, similarity (mm) | vs mean face | MICC error (mm) |",
        "|---|---|---|---|",
    ]
    for name, row in rows.items():
        error = float(np.mean(row["vertex_similarity_mm"]))
        lines.append(f"| {name} | {error:.2f} | {error / baseline - 1:+.0%} | {float(np.mean(row['micc_mm'])):.2f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    summary = {name: {key: value for key, value in row.items() if key != "per_vertex"} for name, row in rows.items()}
    write_files_atomically({output / "results.md": table, output / "results.json": json.dumps(summary, indent=1)})
    mean_face = graph.model.mean_vertices(2).float()
    views = torch.zeros(2, 7)
    views[1, 1] = SIDE_VIEW_YAW
    panels = []
    for row in rows.values():
        colours = torch.from_numpy(error_colours(np.stack([row["per_vertex"]] * 2), 4.0)).float()
        images, _ = render_vertex_colours(mean_face, graph.model.faces, colours, views, 160)
        panels.append([image.numpy() for image in images])
    grid = error_map_grid(
        panels, list(rows), ["front", "side"], 4.0, "Mean per-vertex error after similarity alignment"
    )
    save_png(grid, output / "error_maps.png")
    print(f"wrote {output / 'results.md'}, results.json and error_maps.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
