"""The offline index.html viewer in a real headless browser: a result page with the ICT mean face is opened in
Chromium, the mesh is dragged with pointer events, and the canvas must have been drawn and then changed.

Needs a Chromium binary (Debian: ``apt-get install -y chromium``); skipped with that reason when there is none.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fastganfit.facemodel.morphable import MorphableModel
from fastganfit.fitting.index_page import IndexEntry, IndexPage, render_index
from fastganfit.fitting.outputs import MeshTopology
from fastganfit.io.images import png_bytes

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
BROWSER = next((path for name in BROWSERS if (path := shutil.which(name))), None)

# Appended to the page: waits for the first frame, drags the canvas 60 px right and 18 px down, waits for the
# redraw, then writes what it saw into the DOM, which --dump-dom prints.
DRAG_SCRIPT = """
<script>
function report(result) {
  var out = document.createElement("pre"); out.id = "browser-test"; out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
}
function pointer(canvas, type, x, y) {
  var box = canvas.getBoundingClientRect();
  var options = {pointerId: 1, bubbles: true, clientX: box.left + x, clientY: box.top + y};
  canvas.dispatchEvent(new PointerEvent(type, options));
}
setTimeout(function () {
  var canvas = document.querySelector("canvas[data-mesh]");
  var pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  var before = canvas.toDataURL(), drawn = 0;
  for (var i = 0; i < pixels.length; i += 4) { if (pixels[i] !== pixels[0] || pixels[i + 1] !== pixels[1]) drawn++; }
  pointer(canvas, "pointerdown", 128, 128);
  for (var step = 1; step <= 6; step++) pointer(canvas, "pointermove", 128 + 10 * step, 128 + 3 * step);
  pointer(canvas, "pointerup", 188, 146);
  var waited = 0;  // the viewer redraws on the next animation frame: poll for it
  var poll = setInterval(function () {
    var changed = canvas.toDataURL() !== before;
    waited += 100;
    if (changed || waited >= 5000) {
      clearInterval(poll);
      report({drawn: drawn, size: canvas.width, changed: changed, viewer: !!window.fastganfitViewer});
    }
  }, 100);
}, 1500);
</script>
"""


# CI installs Chromium and sets FASTGANFIT_REQUIRE_BROWSER=1, so there a missing browser fails instead of skipping.
@pytest.mark.skipif(
    BROWSER is None and not os.environ.get("FASTGANFIT_REQUIRE_BROWSER"),
    reason="needs a Chromium binary (Debian: apt-get install -y chromium)",
)
def test_index_page_viewer_draws_and_turns_the_mesh_when_dragged(tmp_path: Path) -> None:
    assert BROWSER is not None, "FASTGANFIT_REQUIRE_BROWSER is set but no Chromium binary is on PATH"
    model = MorphableModel.ict()
    topology = MeshTopology(model.faces.numpy(), model.uvs.numpy(), model.face_uvs.numpy())
    texture = np.zeros((32, 32, 3), np.uint8)
    texture[..., 0], texture[:, :16, 1] = 200, 150  # two colours: turning shows other texels
    entry = IndexEntry("face", "/photos/face.png", [], model.mean_vertices(1)[0].numpy(), png_bytes(texture))
    page = render_index(IndexPage("browser test", [entry]), topology)
    assert "</body>" in page
    (tmp_path / "index.html").write_text(page.replace("</body>", DRAG_SCRIPT + "</body>"), encoding="utf-8")
    command = [
        BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
        "--run-all-compositor-stages-before-draw", "--virtual-time-budget=15000", "--dump-dom",
        (tmp_path / "index.html").as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'id="browser-test"' in result.stdout, f"the page's test script did not report: {result.stderr[-2000:]}"
    seen = json.loads(result.stdout.split('id="browser-test">')[1].split("</pre>")[0])
    assert seen["viewer"] and seen["size"] == 256
    assert seen["drawn"] > 0.05 * 256 * 256  # the face covers a good part of the canvas
    assert seen["changed"]  # dragging turned it
