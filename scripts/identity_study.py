"""Does the regressed 3D shape follow the person? Same-person retrieval on real photo pairs (docs/accuracy.md, 6).

Each person has two photos (``<pairs>/A/<id>.jpg`` and ``<pairs>/B/<id>.jpg``). Every photo is detected (dlib, the
product's landmarker, largest face, upsampled up to ``--upsample`` times so 40-60 px faces are found), aligned into
the model's crop, and regressed; descriptors are compared by Euclidean distance (fastganfit.benchmarks.retrieval:
rank-1, top-5, median rank, ROC AUC). Rows:

- ``mean face``: every mesh the same (chance);
- ``68 landmarks, Procrustes``: the detected landmarks after a 2D similarity alignment to their mean (2D only);
- ``identity embedding``: the identity network's embedding of the regressor's input (what the photos carry);
- per model (``--ckpt``, and ``--config`` for an untrained regressor built from the default config: the landmark
  and identity priors alone): the shape coefficients, and the **neutral meshes** (shape coefficients, expression
  zero, every vertex of the model's face region) after a similarity alignment to the mean face, with the identity
  head on and, for comparison, with it zeroed.

``--add-identity-prior`` gives a checkpoint trained without an identity head one, fitted as at build time with the
default config's settings, and writes it as ``<output>/identity_prior_<i>.ckpt`` (to measure the head on an existing
regressor, e.g. its synthetic error with ``evaluate.py benchmark=synthetic``; retraining with the head gives the
shipped model).

Usage::

    python scripts/identity_study.py --ckpt outputs/train/<run>/full/checkpoints/last.ckpt [--config] \\
        [--pairs ../shared/data/portraits/pairs] [--limit N] [--output outputs/identity_study]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from skimage.transform import SimilarityTransform

from fastganfit.benchmarks.retrieval import RetrievalScores, retrieval_scores
from fastganfit.data.datamodule import collate_faces
from fastganfit.data.face_shards import face_dataset
from fastganfit.fitting.faces import graph_crop_template
from fastganfit.geometry.alignment import umeyama
from fastganfit.io.atomic import atomic_write
from fastganfit.perception.crop import align_face
from fastganfit.perception.landmarks import DlibLandmarker, largest_face
from fastganfit.reconstruction.vertex_error import vertex_error_mm
from fastganfit.regression.checkpoint import (
    CHECKPOINT_CONFIG_KEY,
    build_fast_ganfit_module,
    load_fast_ganfit,
    read_model_config,
)
from fastganfit.regression.identity_prior import IdentityPriorSettings, fit_identity_prior
from fastganfit.regression.landmark_prior import LandmarkPriorSettings, fit_landmark_prior
from fastganfit.regression.module import REGRESSOR_PREFIX, FastGANFitModule

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "fastganfit" / "conf"
BATCH = 32


def default_pairs() -> Path:
    shared = os.environ.get("FASTGANFIT_SHARED")
    return (Path(shared) if shared else REPO.parent / "shared") / "data" / "portraits" / "pairs"


def pair_files(root: Path, limit: int | None) -> list[tuple[str, Path, Path]]:
    """``(id, A photo, B photo)`` of every id with both photos, sorted."""
    if not (root / "A").is_dir() or not (root / "B").is_dir():
        raise SystemExit(f"identity_study: {root} has no A/ and B/ photo folders")
    a = {path.stem: path for path in (root / "A").glob("*.jpg")}
    b = {path.stem: path for path in (root / "B").glob("*.jpg")}
    ids = sorted(set(a) & set(b))[:limit]
    return [(key, a[key], b[key]) for key in ids]


def detect(paths: Sequence[Path], upsample: int) -> np.ndarray:
    """``[N, 68, 2]`` landmarks of each photo's largest face (NaN where none is found)."""
    landmarker = DlibLandmarker(detector="hog+cnn", upsample=upsample, threshold=0.0, max_side=1280)
    landmarks = np.full((len(paths), 68, 2), np.nan)
    for index, path in enumerate(paths):
        face = largest_face(landmarker.detect(np.asarray(Image.open(path).convert("RGB"))))
        if face is not None:
            landmarks[index] = face.landmarks
    return landmarks


def crops(paths: Sequence[Path], landmarks: np.ndarray, module: FastGANFitModule) -> tuple[np.ndarray, np.ndarray]:
    """Aligned crops ``[N, S, S, 3]`` uint8 and their landmarks ``[N, 68, 2]`` (zeros where no face was found)."""
    size = module.graph.crop_size
    template = graph_crop_template(module.graph, size)
    images, points = np.zeros((len(paths), size, size, 3), np.uint8), np.zeros((len(paths), 68, 2), np.float32)
    for index, (path, found) in enumerate(zip(paths, landmarks, strict=True)):
        if not np.isnan(found).any():
            aligned = align_face(np.asarray(Image.open(path).convert("RGB")), found, template, size)
            images[index], points[index] = aligned.image, aligned.landmarks
    return images, points


@torch.no_grad()
def regress_all(module: FastGANFitModule, images: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shape coefficients ``[N, Ks]`` and identity embeddings ``[N, D]`` of the crops."""
    shapes, embeddings = [], []
    for start in range(0, len(images), BATCH):
        crop = torch.from_numpy(images[start : start + BATCH]).permute(0, 3, 1, 2).float() / 255.0
        result = module.reconstruct(crop, torch.from_numpy(points[start : start + BATCH]))
        shapes.append(result.params.shape.numpy())
        embeddings.append(result.target.identity_input.embedding.numpy())
    return np.concatenate(shapes), np.concatenate(embeddings)


def aligned_meshes(module: FastGANFitModule, shapes: np.ndarray) -> np.ndarray:
    """``[N, 3V]``: each neutral mesh (expression zero) after a similarity alignment to the mean face."""
    model, expression = module.graph.model, module.graph.sizes.expression
    with torch.no_grad():
        mean = model(torch.zeros(1, shapes.shape[1]), torch.zeros(1, expression)).numpy()[0].astype(np.float64)
        shape = torch.from_numpy(shapes).float()
        vertices = model(shape, torch.zeros(len(shapes), expression)).numpy().astype(np.float64)
    return np.stack([umeyama(mesh, mean).apply(mesh) for mesh in vertices]).reshape(len(shapes), -1)


def procrustes_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """``[N, 136]``: 2D landmarks after a similarity alignment to their mean (NaN rows kept)."""
    found = ~np.isnan(landmarks).any(axis=(1, 2))
    mean = landmarks[found].mean(0)
    rows = np.full((len(landmarks), 136), np.nan)
    for index in np.flatnonzero(found):
        transform = SimilarityTransform()
        transform.estimate(landmarks[index], mean)
        rows[index] = transform(landmarks[index]).ravel()
    return rows


def default_config(overrides: Sequence[str]) -> dict:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=fast_align", "model.init_checkpoint=null", *overrides])
    return OmegaConf.to_container(cfg.model, resolve=True)


def add_identity_prior(module: FastGANFitModule, path: str, output: Path, overrides: Sequence[str]) -> FastGANFitModule:
    """``module`` (a checkpoint without an identity head) rebuilt with one, fitted as build_fast_ganfit does, and
    saved as ``output`` (train.py's checkpoint format: ``evaluate.py benchmark=synthetic ckpt=...`` scores it)."""
    config = read_model_config(path)
    settings = default_config(overrides)["regressor"]["identity_prior"]
    config["regressor"] = {**config["regressor"], "identity_prior": settings}
    rebuilt = build_fast_ganfit_module(config)
    missing, unexpected = rebuilt.regressor.load_state_dict(module.regressor.state_dict(), strict=False)
    if unexpected or any(not key.startswith(("identity_head", "embedding_")) for key in missing):
        raise SystemExit(f"identity_study: {path}: unexpected weights {unexpected} / missing {missing}")
    graph = rebuilt.graph
    prior = config["regressor"].get("landmark_prior")
    landmark = None if prior is None else LandmarkPriorSettings(**prior)
    landmark_map = None if landmark is None else fit_landmark_prior(graph, landmark)
    noise = 0.0 if landmark is None else landmark.noise
    rebuilt.regressor.set_identity_map(
        **vars(fit_identity_prior(graph, IdentityPriorSettings(**settings), landmark_map, noise))
    )
    state = {REGRESSOR_PREFIX + key: value for key, value in rebuilt.regressor.state_dict().items()}
    with atomic_write(output) as handle:
        torch.save({"state_dict": state, CHECKPOINT_CONFIG_KEY: {"model": config}}, handle)
    return rebuilt.eval()


@contextmanager
def identity_head_zeroed(module: FastGANFitModule) -> Iterator[None]:
    """Within the block the regressor's identity head outputs zero (the model as without the head)."""
    head = module.regressor.identity_head
    saved = {key: value.clone() for key, value in head.state_dict().items()}
    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    try:
        yield
    finally:
        head.load_state_dict(saved)


@torch.no_grad()
def synthetic_errors(module: FastGANFitModule, shards: Path) -> tuple[float, float]:
    """Held-out similarity-aligned vertex error (mm) of the regression and of the mean face on the face shards
    ``shards`` (with ground truth), as the training's ``val/vertex_error_similarity_mm``."""
    samples = list(face_dataset(str(shards), split_by_node=False, split_by_worker=False))
    errors, mean_errors = [], []
    for start in range(0, len(samples), BATCH):
        batch = collate_faces(samples[start : start + BATCH])
        target = batch["vertices"]
        predicted = module.reconstruct(batch["image"], batch["landmarks"]).vertices
        errors.append(vertex_error_mm(predicted, target, align=True))
        mean_face = module.graph.model.mean_vertices(len(target)).to(target)
        mean_errors.append(vertex_error_mm(mean_face, target, align=True))
    return float(torch.cat(errors).mean()), float(torch.cat(mean_errors).mean())


def row(name: str, scores: RetrievalScores) -> dict:
    return {"method": name, **scores.as_dict()}


def study_model(name: str, module: FastGANFitModule, paths: list[Path], landmarks: np.ndarray,
                count: int) -> tuple[list[dict], np.ndarray]:  # fmt: skip
    """Rows of one model (coefficients, meshes, meshes without the identity head) and its embeddings."""
    images, points = crops(paths, landmarks, module)
    missing = np.isnan(landmarks).any(axis=(1, 2))
    shapes, embeddings = regress_all(module, images, points)
    shapes[missing], embeddings[missing] = np.nan, np.nan
    meshes = aligned_meshes(module, np.nan_to_num(shapes))
    meshes[missing] = np.nan
    rows = [row(f"{name}: shape coefficients", retrieval_scores(shapes[:count], shapes[count:])),
            row(f"{name}: neutral meshes", retrieval_scores(meshes[:count], meshes[count:]))]  # fmt: skip
    if module.regressor.identity_head is not None:
        with identity_head_zeroed(module):
            without, _ = regress_all(module, images, points)
        without = aligned_meshes(module, without)
        without[missing] = np.nan
        rows.append(row(f"{name}: neutral meshes, identity head zeroed",
                        retrieval_scores(without[:count], without[count:])))  # fmt: skip
    return rows, embeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", action="append", default=[], help="a train.py checkpoint (repeatable)")
    parser.add_argument("--config", action="store_true", help="also an untrained regressor of the default config")
    parser.add_argument("--add-identity-prior", action="store_true",
                        help="give checkpoints without an identity head one (fitted, default settings)")
    parser.add_argument("--override", action="append", default=[],
                        help="train.py override of the default config (--config, --add-identity-prior), repeatable")
    parser.add_argument("--pairs", type=Path, default=default_pairs())
    parser.add_argument("--limit", type=int, default=None, help="the first N pairs only")
    parser.add_argument("--upsample", type=int, default=2, help="detector upsampling (small faces)")
    parser.add_argument("--landmarks", type=Path, default=None,
                        help="an .npz with the photos' landmarks from an earlier run (skips detection)")
    parser.add_argument("--synthetic", type=Path, default=None,
                        help="face shards with ground truth (data/synthetic_demo/val): each model's vertex error")
    parser.add_argument("--output", type=Path, default=REPO / "outputs" / "identity_study")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    pairs = pair_files(args.pairs, args.limit)
    if not pairs:
        raise SystemExit(f"identity_study: no A/B pairs in {args.pairs}")
    paths = [a for _, a, _ in pairs] + [b for _, _, b in pairs]
    count = len(pairs)
    args.output.mkdir(parents=True, exist_ok=True)
    if args.landmarks is not None:  # an earlier run's landmarks.npz: A photos then B photos of its ``ids``
        stored = np.load(args.landmarks)
        position = {str(key): index for index, key in enumerate(stored["ids"])}
        known = len(position)
        rows = [position[key] for key, _, _ in pairs] + [known + position[key] for key, _, _ in pairs]
        landmarks = stored["landmarks"][rows]
    else:
        landmarks = detect(paths, args.upsample)
        np.savez(args.output / "landmarks.npz", landmarks=landmarks, ids=np.array([key for key, _, _ in pairs]))
    mean = np.where(np.isnan(landmarks).any(axis=(1, 2))[:, None], np.nan, 0.0) * np.ones((1, 3))
    procrustes = procrustes_landmarks(landmarks)
    rows = [row("mean face", retrieval_scores(mean[:count], mean[count:])),
            row("68 landmarks, Procrustes", retrieval_scores(procrustes[:count], procrustes[count:]))]  # fmt: skip
    models: list[tuple[str, FastGANFitModule]] = []
    for index, path in enumerate(args.ckpt):
        module = load_fast_ganfit(path)
        if args.add_identity_prior and module.regressor.identity_head is None:
            saved = args.output / f"identity_prior_{index}.ckpt"
            models.append((f"{path} + identity prior", add_identity_prior(module, path, saved, args.override)))
        else:
            models.append((path, module))
    if args.config:
        models.append(("untrained, default config (priors only)",
                       instantiate(default_config(args.override), _convert_="all").eval()))
    embeddings = None
    synthetic = []
    for name, module in models:
        model_rows, embeddings = study_model(name, module, paths, landmarks, count)
        rows += model_rows
        if args.synthetic is not None:
            error, mean_error = synthetic_errors(module, args.synthetic)
            synthetic.append({"method": name, "vertex_error_similarity_mm": error, "mean_face_mm": mean_error})
            if module.regressor.identity_head is not None:
                with identity_head_zeroed(module):
                    error, mean_error = synthetic_errors(module, args.synthetic)
                synthetic.append({"method": f"{name}, identity head zeroed", "vertex_error_similarity_mm": error,
                                  "mean_face_mm": mean_error})
    if embeddings is not None:
        rows.insert(2, row("identity embedding", retrieval_scores(embeddings[:count], embeddings[count:])))
    lines = ["| method | N | missing | rank-1 | top-5 | median rank | ROC AUC |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['n']} | {r['missing']} | {r['rank1']:.1%} | {r['top5']:.1%} | "
              f"{r['median_rank']:.1f} | {r['auc']:.3f} |" for r in rows]  # fmt: skip
    if synthetic:
        lines += ["", f"Held-out synthetic faces ({args.synthetic}), similarity-aligned vertex error:", "",
                  "| model | vertex error (mm) | mean face (mm) | below the mean face |", "|---|---|---|---|"]
        lines += [f"| {r['method']} | {r['vertex_error_similarity_mm']:.3f} | {r['mean_face_mm']:.3f} | "
                  f"{1 - r['vertex_error_similarity_mm'] / r['mean_face_mm']:.1%} |" for r in synthetic]  # fmt: skip
    (args.output / "results.md").write_text("\n".join(lines) + "\n")
    (args.output / "results.json").write_text(json.dumps({"retrieval": rows, "synthetic": synthetic}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
