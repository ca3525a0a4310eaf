"""Face detection recall on a set that ships with the packages: the two test photos (skimage's astronaut,
matplotlib's Grace Hopper) as they are, mirrored, rotated by +-30 degrees and scaled down to 40 % and 25 %,
plus synthetic renders (fastganfit.data.synthetic) turned up to 70 degrees of yaw, each padded into a larger
canvas. A face counts as found when a detection's box contains the centre of its true landmarks and its side is
0.5 to 2 times their extent. Also the landmark error of the detector's box + dlib's 68-point predictor on the
renders (mean distance to the true landmarks / their bounding-box diagonal). Writes the 'detection' section of
BENCHMARKS.md.

Usage: python bench/detection.py [--detectors hog cnn hog+cnn] [--renders 24]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import write_section
from matplotlib import cbook
from PIL import Image
from skimage import data

from fastganfit.data.synthetic import SyntheticFaceSource, SyntheticSettings
from fastganfit.perception.landmarks import DlibLandmarker

YAW_BINS = ((0, 30), (30, 50), (50, 70))
RENDER_SIZE, PAD = 256, 96


def photos() -> dict[str, np.ndarray]:
    """The two package test photos, uint8 ``[H, W, 3]``."""
    with cbook.get_sample_data("grace_hopper.jpg") as file:
        grace = np.asarray(Image.open(file).convert("RGB"))
    return {"astronaut": data.astronaut(), "grace_hopper": grace}


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points [N, 2]`` through a ``[2, 3]`` affine ``matrix``."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def variants(image: np.ndarray, landmarks: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``name -> (image, landmarks)``: the photo as it is, mirrored, rotated +-30 degrees (about its centre, the
    canvas grown to hold it) and scaled to 40 % and 25 %."""
    height, width = image.shape[:2]
    result = {"as is": (image, landmarks)}
    mirrored = landmarks.copy()
    mirrored[:, 0] = width - 1 - mirrored[:, 0]
    result["mirrored"] = (image[:, ::-1].copy(), mirrored)
    for angle in (30, -30):
        rotated = Image.fromarray(image).rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
        radians = np.deg2rad(angle)  # PIL rotates counter-clockwise on screen (y down)
        centre = np.array([(width - 1) / 2, (height - 1) / 2])
        new_centre = np.array([(rotated.width - 1) / 2, (rotated.height - 1) / 2])
        rotation = np.array([[np.cos(radians), np.sin(radians)], [-np.sin(radians), np.cos(radians)]])
        points = (landmarks - centre) @ rotation.T + new_centre
        result[f"rotated {angle:+d} deg"] = (np.asarray(rotated), points)
    for scale in (0.4, 0.25):
        size = (round(width * scale), round(height * scale))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
        result[f"scaled {scale:.0%}"] = (small, (landmarks + 0.5) * scale - 0.5)
    return result


def renders(count: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """``count`` synthetic faces, yaw up to 70 degrees, each padded by ``PAD`` pixels (edge colours):
    ``(image, landmarks, |yaw| degrees)``."""
    settings = SyntheticSettings(max_yaw_degrees=70.0)
    source = SyntheticFaceSource(11, RENDER_SIZE, settings)
    result = []
    for sample in source.render(list(range(count))):
        yaw = abs(float(np.rad2deg(sample["params"]["camera"][1])))
        image = np.pad(sample["image"], ((PAD, PAD), (PAD, PAD), (0, 0)), mode="edge")
        result.append((image, sample["landmarks"] + PAD, yaw))
    return result


def found(boxes: list[np.ndarray], landmarks: np.ndarray) -> int | None:
    """The index of the first box that finds the face of ``landmarks [68, 2]`` (see the module docstring)."""
    centre = landmarks.mean(0)
    extent = float(np.ptp(landmarks, axis=0).max())
    for index, box in enumerate(boxes):
        side = float(max(box[2] - box[0], box[3] - box[1]))
        inside = box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3]
        if inside and 0.5 * extent <= side <= 2.0 * extent:
            return index
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--detectors", nargs="+", default=["hog", "cnn", "hog+cnn"])
    parser.add_argument("--renders", type=int, default=24)
    args = parser.parse_args()
    torch.set_num_threads(1)
    reference = DlibLandmarker(detector="hog")
    cases: list[tuple[str, np.ndarray, np.ndarray, float | None]] = []
    for name, photo in photos().items():
        truth = max(reference.detect(photo), key=lambda face: face.area).landmarks
        for label, (image, points) in variants(photo, truth).items():
            cases.append((f"{name}, {label}", image, points, None))
    cases += [(f"render {k}", image, points, yaw) for k, (image, points, yaw) in enumerate(renders(args.renders))]
    rows, details = [], []
    for detector in args.detectors:
        landmarker = DlibLandmarker(detector=detector)
        hits: dict[str, list[bool]] = {"photos": [], **{f"yaw {a}-{b}": [] for a, b in YAW_BINS}}
        errors, missed = [], []
        started = time.perf_counter()
        for name, image, truth, yaw in cases:
            faces = landmarker.detect(image)
            index = found([face.box for face in faces], truth)
            group = "photos" if yaw is None else next(f"yaw {a}-{b}" for a, b in YAW_BINS if yaw <= b)
            hits[group].append(index is not None)
            if index is None:
                missed.append(name)
            elif yaw is not None:
                diagonal = float(np.linalg.norm(np.ptp(truth, axis=0)))
                errors.append(float(np.linalg.norm(faces[index].landmarks - truth, axis=1).mean()) / diagonal)
        seconds = (time.perf_counter() - started) / len(cases)
        total = sum(sum(values) for values in hits.values())
        rows.append(
            f"| {detector} | " + " | ".join(f"{sum(v)}/{len(v)}" for v in hits.values())
            + f" | {total}/{len(cases)} | {100 * np.mean(errors):.1f} % | {seconds:.2f} s |"
        )
        details.append(f"- {detector} missed: {', '.join(missed) if missed else 'none'}")
        print(rows[-1], flush=True)
    header = "| detector | " + " | ".join(hits) + " | all | landmark error (renders) | time per image |"
    body = "\n".join([
        "Recall on photos and renders that ship with the packages (bench/detection.py's docstring says how they are",
        "made and what counts as found). dlib's 68-point predictor runs on each detector's box; its error is the",
        "mean landmark distance over the found renders / the true landmarks' bounding-box diagonal.",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
        *rows,
        "",
        *details,
    ])
    write_section("detection", body, "python bench/detection.py " + " ".join(
        ["--detectors", *args.detectors, "--renders", str(args.renders)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
