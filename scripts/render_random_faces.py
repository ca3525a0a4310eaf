"""Render a grid of random faces (identity, expression, pose, light, texture) to ``outputs/``.

Usage: ``python scripts/render_random_faces.py [num_faces=16] [renderer.backend=torch] [seed=0]``.
Writes ``grid.png`` and ``face_XX.obj/.mtl/.png`` into Hydra's run folder and prints its path.
"""

from __future__ import annotations

from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from tqdm import tqdm

from fastganfit.cli import CONFIG_DIR
from fastganfit.data.random_faces import sample_random_faces, sample_sh_light
from fastganfit.io.images import save_grid
from fastganfit.io.mesh_export import write_obj
from fastganfit.render.lighting import SphericalHarmonicsLighting


@hydra.main(config_path=str(CONFIG_DIR), config_name="random_faces", version_base="1.3")
def main(cfg: DictConfig) -> None:
    if cfg.num_faces < 1 or cfg.batch_size < 1:
        raise SystemExit(f"error: num_faces and batch_size must be positive (got {cfg.num_faces}, {cfg.batch_size})")
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    model = instantiate(cfg.facemodel)
    renderer = instantiate(cfg.renderer)(model=model)
    texture_model = instantiate(cfg.texture)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    faces = sample_random_faces(model, int(cfg.num_faces), generator, **cfg.sampler)
    texture_latents = torch.randn(int(cfg.num_faces), texture_model.latent_dim, generator=generator)
    if isinstance(renderer.lighting, SphericalHarmonicsLighting):
        faces.light = sample_sh_light(int(cfg.num_faces), generator)
    images, exported = [], 0
    with torch.no_grad():
        for start in tqdm(range(0, cfg.num_faces, cfg.batch_size), desc="rendering", unit="batch"):
            batch = slice(start, start + cfg.batch_size)
            vertices = model(faces.shape[batch], faces.expression[batch])
            textures = texture_model(texture_latents[batch])
            images.append(renderer(vertices, textures, faces.camera[batch], faces.light[batch]).image)
            for index in range(min(cfg.export_meshes - exported, vertices.shape[0])):
                write_obj(output_dir / f"face_{exported:02d}.obj", vertices[index], model.faces, model.uvs,
                          model.face_uvs, textures[index])
                exported += 1
    grid = save_grid(torch.cat(images), output_dir / "grid.png", columns=int(cfg.columns))
    print(f"wrote {grid} ({cfg.num_faces} faces) and {exported} textured meshes to {output_dir}")


if __name__ == "__main__":
    main()
