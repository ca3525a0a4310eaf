"""``index.html`` of a run over several images: every result's report picture, links to its files and a 3D
viewer of its mesh, plus the inputs that failed and why.

The page works offline and from ``file://``: the viewer (``viewer.js``, a small software renderer on a 2D
canvas) is inlined, and so are the meshes (vertices quantised to 16 bits over their bounding box, about
0.005 mm steps; the face model's triangles and UVs once per page) and their textures (PNG data URLs).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fastganfit.fitting.outputs import MeshTopology
from fastganfit.io.atomic import atomic_write

VIEWER_SCRIPT = Path(__file__).with_name("viewer.js")
VIEWER_SIZE = 256
INT16_STEPS = 65534

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
section.result { border-top: 1px solid #ddd; padding: 0.8em 0; }
section.result h2 { font-size: 1.05em; margin: 0 0 0.3em 0; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
.report { max-width: 100%; image-rendering: auto; }
canvas { border: 1px solid #ccc; cursor: grab; touch-action: none; }
.viewer label { display: block; font-size: 0.85em; }
.notes, .source, .links { font-size: 0.85em; color: #555; margin: 0.2em 0; }
.failed li { color: #a00; }
"""


@dataclass(frozen=True)
class IndexEntry:
    """One result on the page: its folder ``key`` (relative to the page), ``source`` path, ``notes``,
    ``vertices [V, 3]`` (mm) and its texture as PNG bytes."""

    key: str
    source: str
    notes: Sequence[str]
    vertices: np.ndarray
    texture_png: bytes


@dataclass
class IndexPage:
    """The page's content: ``entries`` (results), ``failures`` (``(source, reason)``), a ``title`` and
    ``description`` lines."""

    title: str
    entries: list[IndexEntry] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    description: list[str] = field(default_factory=list)


def encode(array: np.ndarray) -> str:
    """Little-endian bytes of ``array`` in base64."""
    return base64.b64encode(np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()).decode()


def quantise_vertices(vertices: np.ndarray) -> dict[str, object]:
    """``vertices [V, 3]`` as int16 steps over their bounding box: ``{"vertices": base64, "offset": [3],
    "scale": [3]}`` with ``position = offset + scale * step``."""
    low, high = vertices.min(axis=0).astype(np.float64), vertices.max(axis=0).astype(np.float64)
    scale = np.maximum(high - low, 1e-9) / INT16_STEPS
    offset = (low + high) / 2
    steps = np.round((vertices - offset) / scale).clip(-32767, 32767).astype(np.int16)
    return {"vertices": encode(steps), "offset": offset.tolist(), "scale": scale.tolist()}


def mesh_data(topology: MeshTopology, entries: Sequence[IndexEntry]) -> dict[str, object]:
    """The JSON the viewer reads: shared ``topology`` and one ``meshes`` entry per result."""
    return {
        "topology": {
            "faces": encode(topology.faces.astype(np.uint32)),
            "uvs": encode(topology.uvs.astype(np.float32)),
            "face_uvs": encode(topology.face_uvs.astype(np.uint32)),
        },
        "meshes": [
            {
                **quantise_vertices(entry.vertices),
                "texture": "data:image/png;base64," + base64.b64encode(entry.texture_png).decode(),
            }
            for entry in entries
        ],
    }


def script_json(data: object) -> str:
    """JSON safe inside a ``<script>`` element (no ``</`` sequence)."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def entry_html(index: int, entry: IndexEntry) -> str:
    """The section of one result."""
    key = html.escape(entry.key, quote=True)
    notes = "".join(f'<p class="notes">note: {html.escape(note)}</p>' for note in entry.notes)
    links = " · ".join(
        f'<a href="{key}/{name}">{name}</a>'
        for name in ("mesh.obj", "mesh.glb", "texture.png", "params.npz", "overlay.png", "report.png", "fit.json")
    )
    return (
        f'<section class="result" id="{key}">\n<h2>{html.escape(entry.key)}</h2>\n'
        f'<p class="source">{html.escape(entry.source)}</p>\n{notes}\n'
        f'<div class="row">\n<img class="report" src="{key}/report.png" alt="report of {key}">\n'
        f'<div class="viewer"><canvas id="viewer-{index}" data-mesh="{index}" width="{VIEWER_SIZE}" '
        f'height="{VIEWER_SIZE}" title="drag to turn, wheel to zoom, double-click to reset"></canvas>\n'
        f'<label><input type="checkbox" id="viewer-{index}-texture" checked> texture</label></div>\n</div>\n'
        f'<p class="links">{links}</p>\n</section>'
    )


def render_index(page: IndexPage, topology: MeshTopology) -> str:
    """The whole HTML page."""
    failures = ""
    if page.failures:
        items = "".join(f"<li>{html.escape(source)}: {html.escape(reason)}</li>" for source, reason in page.failures)
        failures = f'<section class="failed"><h2>Failed ({len(page.failures)})</h2><ul>{items}</ul></section>'
    description = "".join(f"<p>{html.escape(line)}</p>" for line in page.description)
    sections = "\n".join(entry_html(index, entry) for index, entry in enumerate(page.entries))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(page.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(page.title)}</h1>\n{description}\n{failures}\n{sections}\n"
        f'<script type="application/json" id="fastganfit-meshes">{script_json(mesh_data(topology, page.entries))}'
        f"</script>\n<script>\n{VIEWER_SCRIPT.read_text(encoding='utf-8')}</script>\n</body>\n</html>\n"
    )


def write_index(path: str | Path, page: IndexPage, topology: MeshTopology) -> Path:
    """Write :func:`render_index` to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(render_index(page, topology))
    return Path(path)
