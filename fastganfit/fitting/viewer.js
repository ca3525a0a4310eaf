// fastganfit mesh viewer: a small software renderer (z-buffer, textured or shaded) on a 2D canvas.
// Works offline from a file:// page: the meshes and their textures are inlined in the page as JSON
// (<script type="application/json" id="fastganfit-meshes">), no library or network access is needed.
// Drag to turn a face, use the wheel to zoom, double-click to reset; the checkbox beside a viewer switches
// between the texture and plain shading. In Node.js the pure functions are exported for tests.
(function (root) {
  "use strict";

  var BACKGROUND = [246, 246, 246];
  var LIGHT = normalise([-0.35, 0.45, 1.0]);

  function normalise(v) {
    var n = Math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) || 1;
    return [v[0] / n, v[1] / n, v[2] / n];
  }

  // Base64 text -> Uint8Array (the browser's atob, or Node's Buffer).
  function decodeBase64(text) {
    if (typeof atob === "function") {
      var binary = atob(text);
      var bytes = new Uint8Array(binary.length);
      for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
      return bytes;
    }
    return new Uint8Array(Buffer.from(text, "base64"));
  }

  function typedArray(text, Type) {
    var bytes = decodeBase64(text);
    return new Type(bytes.buffer, bytes.byteOffset, bytes.byteLength / Type.BYTES_PER_ELEMENT);
  }

  // Area-weighted unit vertex normals of positions [V*3] and triangles [F*3].
  function vertexNormals(positions, faces) {
    var normals = new Float32Array(positions.length);
    for (var f = 0; f < faces.length; f += 3) {
      var a = faces[f] * 3, b = faces[f + 1] * 3, c = faces[f + 2] * 3;
      var ux = positions[b] - positions[a], uy = positions[b + 1] - positions[a + 1], uz = positions[b + 2] - positions[a + 2];
      var vx = positions[c] - positions[a], vy = positions[c + 1] - positions[a + 1], vz = positions[c + 2] - positions[a + 2];
      var nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      for (var k = 0; k < 3; k++) {
        var i = faces[f + k] * 3;
        normals[i] += nx; normals[i + 1] += ny; normals[i + 2] += nz;
      }
    }
    for (var j = 0; j < normals.length; j += 3) {
      var n = Math.sqrt(normals[j] * normals[j] + normals[j + 1] * normals[j + 1] + normals[j + 2] * normals[j + 2]) || 1;
      normals[j] /= n; normals[j + 1] /= n; normals[j + 2] /= n;
    }
    return normals;
  }

  // A mesh from the page's data: shared topology (faces, uvs, face_uvs) and one entry's quantised vertices,
  // centred on its bounding box and scaled to unit radius.
  function buildMesh(topology, entry) {
    var quantised = typedArray(entry.vertices, Int16Array);
    var positions = new Float32Array(quantised.length);
    for (var i = 0; i < quantised.length; i++) {
      positions[i] = entry.offset[i % 3] + entry.scale[i % 3] * quantised[i];
    }
    var low = [Infinity, Infinity, Infinity], high = [-Infinity, -Infinity, -Infinity];
    for (var j = 0; j < positions.length; j++) {
      low[j % 3] = Math.min(low[j % 3], positions[j]);
      high[j % 3] = Math.max(high[j % 3], positions[j]);
    }
    var centre = [0, 1, 2].map(function (k) { return (low[k] + high[k]) / 2; });
    var radius = 0;
    for (var m = 0; m < positions.length; m += 3) {
      positions[m] -= centre[0]; positions[m + 1] -= centre[1]; positions[m + 2] -= centre[2];
      radius = Math.max(radius, Math.hypot(positions[m], positions[m + 1], positions[m + 2]));
    }
    for (var r = 0; r < positions.length; r++) positions[r] /= radius || 1;
    var faces = typedArray(topology.faces, Uint32Array);
    return {
      positions: positions,
      normals: vertexNormals(positions, faces),
      faces: faces,
      uvs: typedArray(topology.uvs, Float32Array),
      faceUvs: typedArray(topology.face_uvs, Uint32Array),
    };
  }

  // Rotation matrix (row-major 3x3) turning by yaw about +Y, then pitch about +X.
  function rotation(yaw, pitch) {
    var cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
    return [cy, 0, sy, sp * sy, cp, -sp * cy, -cp * sy, sp, cp * cy];
  }

  // Render mesh into pixels (Uint8ClampedArray, RGBA, width x height): orthographic view down -Z after the
  // rotation, z-buffered, coloured from texture ({width, height, data RGBA}) or grey, Lambert-shaded.
  function renderFrame(mesh, texture, view, width, height, pixels) {
    var R = rotation(view.yaw, view.pitch);
    var count = mesh.positions.length / 3;
    var sx = new Float32Array(count), sy = new Float32Array(count), sz = new Float32Array(count);
    var shade = new Float32Array(count);
    var half = Math.min(width, height) / 2, scale = half * 0.95 * view.zoom;
    for (var v = 0; v < count; v++) {
      var x = mesh.positions[3 * v], y = mesh.positions[3 * v + 1], z = mesh.positions[3 * v + 2];
      sx[v] = width / 2 + scale * (R[0] * x + R[1] * y + R[2] * z);
      sy[v] = height / 2 - scale * (R[3] * x + R[4] * y + R[5] * z);
      sz[v] = R[6] * x + R[7] * y + R[8] * z;
      var nx = mesh.normals[3 * v], ny = mesh.normals[3 * v + 1], nz = mesh.normals[3 * v + 2];
      var lambert = LIGHT[0] * (R[0] * nx + R[1] * ny + R[2] * nz) + LIGHT[1] * (R[3] * nx + R[4] * ny + R[5] * nz) +
        LIGHT[2] * (R[6] * nx + R[7] * ny + R[8] * nz);
      shade[v] = 0.3 + 0.75 * Math.max(0, lambert);
    }
    var depth = new Float32Array(width * height).fill(-Infinity);
    for (var p = 0; p < width * height; p++) {
      pixels[4 * p] = BACKGROUND[0]; pixels[4 * p + 1] = BACKGROUND[1]; pixels[4 * p + 2] = BACKGROUND[2];
      pixels[4 * p + 3] = 255;
    }
    var faces = mesh.faces, faceUvs = mesh.faceUvs, uvs = mesh.uvs;
    for (var f = 0; f < faces.length; f += 3) {
      var a = faces[f], b = faces[f + 1], c = faces[f + 2];
      var area = (sx[b] - sx[a]) * (sy[c] - sy[a]) - (sy[b] - sy[a]) * (sx[c] - sx[a]);
      if (Math.abs(area) < 1e-12) continue;
      var x0 = Math.max(0, Math.ceil(Math.min(sx[a], sx[b], sx[c]) - 0.5));
      var x1 = Math.min(width - 1, Math.floor(Math.max(sx[a], sx[b], sx[c]) - 0.5));
      var y0 = Math.max(0, Math.ceil(Math.min(sy[a], sy[b], sy[c]) - 0.5));
      var y1 = Math.min(height - 1, Math.floor(Math.max(sy[a], sy[b], sy[c]) - 0.5));
      var ta = faceUvs[f], tb = faceUvs[f + 1], tc = faceUvs[f + 2];
      for (var py = y0; py <= y1; py++) {
        var cyp = py + 0.5;
        for (var px = x0; px <= x1; px++) {
          var cxp = px + 0.5;
          var wa = ((sx[b] - cxp) * (sy[c] - cyp) - (sy[b] - cyp) * (sx[c] - cxp)) / area;
          var wb = ((sx[c] - cxp) * (sy[a] - cyp) - (sy[c] - cyp) * (sx[a] - cxp)) / area;
          var wc = 1 - wa - wb;
          if (wa < 0 || wb < 0 || wc < 0) continue;
          var zed = wa * sz[a] + wb * sz[b] + wc * sz[c];
          var index = py * width + px;
          if (zed <= depth[index]) continue;
          depth[index] = zed;
          var light = wa * shade[a] + wb * shade[b] + wc * shade[c];
          var red = 205, green = 205, blue = 205;
          if (texture) {
            var u = wa * uvs[2 * ta] + wb * uvs[2 * tb] + wc * uvs[2 * tc];
            var w = wa * uvs[2 * ta + 1] + wb * uvs[2 * tb + 1] + wc * uvs[2 * tc + 1];
            var column = Math.min(texture.width - 1, Math.max(0, Math.floor(u * texture.width)));
            var row = Math.min(texture.height - 1, Math.max(0, Math.floor((1 - w) * texture.height)));
            var t = 4 * (row * texture.width + column);
            red = texture.data[t]; green = texture.data[t + 1]; blue = texture.data[t + 2];
            light = 0.6 + 0.55 * (light - 0.3);
          }
          pixels[4 * index] = red * light; pixels[4 * index + 1] = green * light; pixels[4 * index + 2] = blue * light;
        }
      }
    }
    return pixels;
  }

  function loadTexture(url, done) {
    var image = new Image();
    image.onload = function () {
      var canvas = document.createElement("canvas");
      canvas.width = image.width; canvas.height = image.height;
      var context = canvas.getContext("2d");
      context.drawImage(image, 0, 0);
      done(context.getImageData(0, 0, image.width, image.height));
    };
    image.onerror = function () { done(null); };
    image.src = url;
  }

  // Attach a viewer to a canvas: drag turns, wheel zooms, double-click resets, the toggle switches the texture.
  function attach(canvas, mesh, texture, toggle) {
    var context = canvas.getContext("2d");
    var frame = context.createImageData(canvas.width, canvas.height);
    var view = { yaw: 0, pitch: 0, zoom: 1 };
    var pending = false, dragging = null;
    function draw() {
      pending = false;
      var useTexture = texture && (!toggle || toggle.checked);
      renderFrame(mesh, useTexture ? texture : null, view, canvas.width, canvas.height, frame.data);
      context.putImageData(frame, 0, 0);
    }
    function request() {
      if (!pending) { pending = true; requestAnimationFrame(draw); }
    }
    canvas.addEventListener("pointerdown", function (event) {
      dragging = { x: event.clientX, y: event.clientY };
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!dragging) return;
      view.yaw += (event.clientX - dragging.x) * 0.01;
      view.pitch = Math.max(-1.5, Math.min(1.5, view.pitch + (event.clientY - dragging.y) * 0.01));
      dragging = { x: event.clientX, y: event.clientY };
      request();
    });
    canvas.addEventListener("pointerup", function () { dragging = null; });
    canvas.addEventListener("pointercancel", function () { dragging = null; });
    canvas.addEventListener("wheel", function (event) {
      event.preventDefault();
      view.zoom = Math.max(0.3, Math.min(4, view.zoom * Math.exp(-event.deltaY * 0.001)));
      request();
    }, { passive: false });
    canvas.addEventListener("dblclick", function () { view = { yaw: 0, pitch: 0, zoom: 1 }; request(); });
    if (toggle) toggle.addEventListener("change", request);
    draw();
  }

  function start() {
    var source = document.getElementById("fastganfit-meshes");
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var canvases = document.querySelectorAll("canvas[data-mesh]");
    Array.prototype.forEach.call(canvases, function (canvas) {
      var entry = data.meshes[Number(canvas.getAttribute("data-mesh"))];
      var toggle = document.getElementById(canvas.id + "-texture");
      var mesh = buildMesh(data.topology, entry);
      loadTexture(entry.texture, function (texture) { attach(canvas, mesh, texture, toggle); });
    });
  }

  var api = { decodeBase64: decodeBase64, buildMesh: buildMesh, rotation: rotation, renderFrame: renderFrame,
    vertexNormals: vertexNormals };
  if (typeof module !== "undefined" && module.exports) {
    module.exports = api;
  } else if (typeof document !== "undefined") {
    root.fastganfitViewer = api;
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
    else start();
  }
})(typeof window !== "undefined" ? window : globalThis);
