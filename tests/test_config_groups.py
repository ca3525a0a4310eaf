"""Every option of every config group in conf/, composed through its entry point and INSTANTIATED, with tiny files
in each asset's real format (tests/asset_files.py). Options are read from the folders, so a new option is covered
(and a group folder without a way to build it fails :func:`test_every_group_folder_is_covered`)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from asset_files import AssetFiles
from hydra import compose, initialize_config_dir
from hydra.utils import get_object, instantiate
from omegaconf import DictConfig, OmegaConf
from skimage import data
from tiny_checkpoint import TINY_MODEL_OVERRIDES

from fastganfit.cli.components import checkpoint_values, component_overrides
from fastganfit.cli.evaluate import model_values
from fastganfit.fitting.package_config import require_component_values
from fastganfit.regression.checkpoint import with_values
from fastganfit.regression.module import FastGANFitModule, schedule_length

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "fastganfit" / "conf"
#: conf/ folders that are config groups (a clone's git-ignored local/ holds the user's paths: docs/assets.md).
GROUPS = sorted(path.name for path in CONF.iterdir() if path.is_dir() and path.name != "local")
#: The model's component groups, as conf/components/default.yaml lists them.
COMPONENTS = [
    next(iter(entry)).lstrip("/") for entry in OmegaConf.load(CONF / "components" / "default.yaml").defaults
]
#: Groups that compose with train.py's config and how each is built; the rest below have their own tests.
TRAIN_GROUPS = ("loss", "model", "data", "experiment", "trainer", "logger")


def options(group: str) -> list[str]:
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def group_options(*groups: str) -> list[tuple[str, str]]:
    return [(group, option) for group in groups for option in options(group)]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> AssetFiles:
    """One tiny file per asset format, written on first use."""
    return AssetFiles(tmp_path_factory.mktemp("assets"))


def required(group: str, option: str, assets: AssetFiles, tmp_path: Path) -> list[str]:
    """The values an option needs to be built: its asset files (the documented overrides) and test sizes."""
    face = [f"facemodel.landmark_indices={assets['landmarks']}", f"facemodel.uv_mesh={assets['uv_mesh']}"]
    fan = [f"weights={assets['fan']}", "flip=false"]
    table = {
        "facemodel/bfm2009": [f"facemodel.path={assets['bfm2009']}", *face],
        "facemodel/bfm2017": [f"facemodel.path={assets['bfm2017']}", *face],
        "facemodel/flame": [f"facemodel.path={assets['flame']}", *face],
        "facemodel/npz": [f"facemodel.path={assets['npz']}"],
        "texture/gan": [f"texture.path={assets['gan']}"],
        "texture/pca": [f"texture.path={assets['pca']}"],
        "identity/arcface_iresnet50": [f"identity.weights={assets['arcface_iresnet50']}", "identity.layers=[layer2]"],
        "identity/arcface_iresnet100": [f"identity.weights={assets['arcface_iresnet100']}", "identity.layers=[layer2]"],
        "heatmaps/fan": [f"heatmaps.{value}" for value in fan] + ["heatmaps.crop_size=64", "heatmaps.heatmap_size=32"],
        "landmarks/fan": [f"landmarks.{value}" for value in fan],
        "data/shards": [f"data.train_urls={tmp_path}"],
        "data/mixed": [f"data.self_supervised.train_urls={tmp_path}"],
        "logger/wandb": [f"logger.save_dir={tmp_path}"],  # its default is the Hydra run folder
        "experiment/hybrid": [f"data.self_supervised.train_urls={tmp_path}", "model.init_checkpoint=null"],
        "experiment/photos": [f"data.self_supervised.train_urls={tmp_path}", "model.init_checkpoint=null"],
        "experiment/demo": ["model.init_checkpoint=null"],
        "experiment/fast_full": ["model.init_checkpoint=null"],
        "experiment/texture_gan": [f"data.urls={tmp_path}"],
        "benchmark/micc": [f"paths.micc={tmp_path}", f"paths.micc_landmarks={tmp_path}",
                           f"reconstructions_dir={tmp_path}"],
        "benchmark/now": [f"paths.now={tmp_path}", f"reconstructions_dir={tmp_path}",
                          f"benchmark.image_list={tmp_path / 'imagepathsvalidation.txt'}"],
        "benchmark/synthetic": [f"ckpt={assets['ckpt']}"],
        "benchmark/pairs": [f"ckpt={assets['ckpt']}", f"paths.pairs={tmp_path}"],
    }  # fmt: skip
    (tmp_path / "imagepathsvalidation.txt").touch()
    for folder in ("scans", "scans_lmks_onlypp"):
        (tmp_path / folder).mkdir(exist_ok=True)
    return table.get(f"{group}/{option}", [])


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides)


def tiny_overrides(group: str) -> list[str]:
    """TINY_MODEL_OVERRIDES without the ones of ``group`` (whose option brings its own)."""
    return [override for override in TINY_MODEL_OVERRIDES if not override.startswith(f"{group}.")]


def test_every_group_folder_is_covered() -> None:
    # sweep: tests/test_tracking.py (composes the sweep into training runs and runs a multirun);
    # hydra (launcher/slurm_gpu): tests/test_cluster_configs.py (composes and instantiates the launcher)
    # debug (smoke): tests/test_debug_smoke.py (trains with it)
    covered = {*COMPONENTS, "landmarks", "fit", "benchmark", "components", "sweep", "hydra", "paths",
               "optimizer", "scheduler", "debug", *TRAIN_GROUPS}  # fmt: skip
    assert set(GROUPS) == covered, f"config groups without an instantiation test: {set(GROUPS) - covered}"
    assert set(COMPONENTS) == {"facemodel", "texture", "identity", "heatmaps", "lighting", "renderer"}


@pytest.mark.parametrize(("group", "option"), group_options(*COMPONENTS))
def test_component_option_builds_a_model_that_trains(
    group: str, option: str, assets: AssetFiles, tmp_path: Path
) -> None:
    """``train.py experiment=fast_align <group>=<option>``: the option lands in the model config, the module builds
    with a regressor sized from it, and one batch gives a finite full GANFit loss whose gradient reaches the
    regressor."""
    overrides = [
        "experiment=fast_align", "model.init_checkpoint=null", "loss=fast_full", f"{group}={option}",
        *tiny_overrides(group), *required(group, option, assets, tmp_path),
    ]  # fmt: skip
    cfg = compose_config("train", overrides)
    config = OmegaConf.to_container(cfg.model, resolve=True)
    chosen = OmegaConf.load(CONF / group / f"{option}.yaml")["_target_"]
    landed = {"facemodel": config["model"], "lighting": config["renderer"]["lighting"]}.get(group, config.get(group))
    assert landed["_target_"] == chosen
    module = instantiate(config, _convert_="all")
    assert isinstance(module, FastGANFitModule)
    size = module.graph.crop_size
    crops = torch.rand(2, 3, size, size)
    landmarks = size * (0.25 + 0.5 * torch.rand(2, 68, 2))
    module.regressor.train()
    result = module.reconstruct(crops, landmarks)
    total, terms = module.objective(result)
    assert torch.isfinite(total) and terms["identity"] >= 0
    assert result.render.image.shape == (2, 3, *module.graph.render_size)
    total.backward()
    grads = [p.grad for p in module.regressor.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(grad).all() for grad in grads)
    assert sum(float(grad.abs().sum()) for grad in grads) > 0


ASSET_OPTIONS = [(group, option) for group, option in group_options(*COMPONENTS, "landmarks")
                 if {"path", "weights"} & set(OmegaConf.load(CONF / group / f"{option}.yaml"))]


@pytest.mark.parametrize(("group", "option"), ASSET_OPTIONS)
@pytest.mark.parametrize("problem", ["missing", "not in the format"])
def test_a_missing_or_wrong_asset_file_is_named(
    group: str, option: str, problem: str, assets: AssetFiles, tmp_path: Path
) -> None:
    """The option's file, missing or junk: building the component fails naming the file (and, when missing, what
    it should be)."""
    bad = tmp_path / "licensed_asset.bin"
    if problem != "missing":
        bad.write_bytes(b"not an asset" * 100)
    key = next(key for key in OmegaConf.load(CONF / group / f"{option}.yaml") if key in ("path", "weights"))
    overrides = [*required(group, option, assets, tmp_path), f"{group}.{key}={bad}"]
    cfg = compose_config("fit", ["image=x.png", f"{group}={option}", *overrides])
    with pytest.raises(Exception) as error:
        instantiate(cfg[group], _convert_="all")
    message = str(error.value) + str(error.value.__cause__ or "")
    assert str(bad) in message
    if problem == "missing":
        assert any(word in message for word in ("expected", "download", "should be")), message


@pytest.mark.parametrize("backend", ["auto", "torch", "pytorch3d"])
def test_renderer_backend_override_lands_in_the_model(backend: str) -> None:
    cfg = compose_config("train", ["experiment=fast_align", "model.init_checkpoint=null", f"renderer.backend={backend}",
                                   *TINY_MODEL_OVERRIDES])  # fmt: skip
    module = instantiate(cfg.model, _convert_="all")
    assert module.graph.renderer.backend == backend
    size = module.graph.crop_size
    result = module.reconstruct(torch.rand(2, 3, size, size), size * (0.25 + 0.5 * torch.rand(2, 68, 2)))
    assert torch.isfinite(result.render.image).all() and result.render.mask.sum() > 0


def test_regressor_timm_weights_file(assets: AssetFiles) -> None:
    """``model.regressor.heatmap_weights=<timm weights>``: the heatmap backbone loads the file's weights."""
    cfg = compose_config("train", ["experiment=fast_align", "model.init_checkpoint=null",
                                   f"model.regressor.heatmap_weights={assets['timm']}", *TINY_MODEL_OVERRIDES])
    module = instantiate(cfg.model, _convert_="all")
    saved = torch.load(assets["timm"], weights_only=True)
    loaded = module.regressor.backbone.state_dict()
    key = next(key for key in saved if key.endswith("bn1.weight"))
    torch.testing.assert_close(loaded[key], saved[key])


@pytest.mark.parametrize(("group", "option"), group_options("optimizer", "scheduler"))
def test_optimizer_and_scheduler_options_build(group: str, option: str) -> None:
    """``<group>@model.<group>=<option>``: the partial lands in the model config and builds an optimiser / a
    scheduler that steps the learning rate."""
    cfg = compose_config("train", ["experiment=fast_align", f"{group}@model.{group}={option}"])
    assert cfg.model[group]._target_ == OmegaConf.load(CONF / group / f"{option}.yaml")._target_
    optimizer, scheduler = instantiate(cfg.model.optimizer), instantiate(cfg.model.scheduler)
    built = optimizer([torch.nn.Parameter(torch.zeros(1))])
    assert isinstance(built, torch.optim.Optimizer)
    schedule = scheduler(built, **schedule_length(scheduler, 100))
    assert isinstance(schedule, torch.optim.lr_scheduler.LRScheduler)
    for _ in range(3):
        built.step()
        schedule.step()
    assert 0 < built.param_groups[0]["lr"] <= cfg.model.optimizer.lr


@pytest.mark.parametrize(("group", "option"), group_options("landmarks"))
def test_landmarks_option_detects_a_face(group: str, option: str, assets: AssetFiles, tmp_path: Path) -> None:
    cfg = compose_config("fit", ["image=x.png", f"landmarks={option}", *required(group, option, assets, tmp_path)])
    landmarker = instantiate(cfg.landmarks)
    assert isinstance(landmarker, get_object(cfg.landmarks._target_))
    faces = landmarker.detect(data.astronaut())
    assert len(faces) == 1 and np.asarray(faces[0].landmarks).shape == (68, 2)


@pytest.mark.parametrize(("group", "option"), group_options("fit"))
def test_fit_option_builds_settings(group: str, option: str) -> None:
    cfg = compose_config("fit", ["image=x.png", f"fit@refinement={option}"])
    settings = instantiate(cfg.refinement, _convert_="all")
    assert [stage.name for stage in settings.stages] == list(cfg.refinement.stages)


@pytest.mark.parametrize(("group", "option"), group_options("benchmark"))
def test_benchmark_option_builds(group: str, option: str, assets: AssetFiles, tmp_path: Path) -> None:
    cfg = compose_config("evaluate", [f"benchmark={option}", *required(group, option, assets, tmp_path)])
    benchmark = instantiate(cfg.benchmark)
    assert isinstance(benchmark, get_object(cfg.benchmark._target_)) and callable(benchmark.run)


@pytest.mark.parametrize(("group", "option"), group_options(*TRAIN_GROUPS))
def test_train_group_option_builds(
    group: str, option: str, assets: AssetFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """loss, model, data, experiment, trainer and logger options through train.py's config."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    experiment = option if group == "experiment" else "fast_align"
    overrides = [f"experiment={experiment}", f"run_dir={tmp_path}", *required(group, option, assets, tmp_path)]
    if group != "experiment":
        overrides += [f"{group}={option}", "model.init_checkpoint=null"]
    if group in ("trainer",) and not torch.cuda.is_available():
        overrides += ["trainer.accelerator=cpu", "trainer.devices=1"]  # the GPU options' other settings still build
    if experiment.startswith("fast"):
        overrides += TINY_MODEL_OVERRIDES
    cfg = compose_config("train", overrides)
    if group == "experiment":
        assert isinstance(instantiate(cfg.model, _convert_="all"), L.LightningModule)
        assert isinstance(instantiate(cfg.data, _convert_="all"), L.LightningDataModule)
        return
    built = instantiate(cfg[group], _convert_="all")
    target = get_object(cfg[group]._target_)
    assert isinstance(built, target if isinstance(target, type) else L.LightningModule)


def test_component_overrides_next_to_a_checkpoint() -> None:
    """With a ckpt: values land at their model config path; the trained option may be named (to give its file),
    another option or another setting of it is an error naming the difference."""
    trained = OmegaConf.to_container(compose_config("train", [
        "experiment=fast_align", "identity=arcface_iresnet50", "identity.weights=/old/r50.pth", "lighting=sh",
    ]).model, resolve=True)  # fmt: skip

    def values(*overrides: str) -> dict:
        cfg = compose_config("fit", ["image=x.png", "ckpt=run.ckpt", *overrides])
        return checkpoint_values(cfg, overrides, trained, "run.ckpt")

    assert values("renderer.backend=torch", "lighting=sh") == {"renderer.backend": "torch"}
    assert values("identity=arcface_iresnet50", "identity.weights=/new/r50.pth", "refine=true") == {
        "identity.weights": "/new/r50.pth"
    }
    assert component_overrides(["lighting.shininess=5", "+facemodel=npz", "image=x"]) == (
        ["+facemodel=npz"], {"renderer.lighting.shininess": 5}
    )
    with pytest.raises(ValueError, match=r"identity=dlib_resnet: ckpt=run.ckpt rebuilds .* its identity has _target_="):
        values("identity=dlib_resnet")
    with pytest.raises(ValueError, match=r"its identity has arch='iresnet50', the option 'iresnet100'"):
        values("identity=arcface_iresnet100", "identity.weights=/new/r100.pth")
    with pytest.raises(ValueError, match=r"lighting=phong: .*SphericalHarmonicsLighting"):
        values("lighting=phong")
    with pytest.raises(ValueError, match=r"has no 'identity\.weights' to set it in"):
        with_values({"identity": {"_target_": "x"}}, {"identity.weights.x": 1})
    assert with_values({"identity": {"weights": "a"}}, {"identity.weights": "b"}) == {"identity": {"weights": "b"}}


def test_evaluate_component_overrides(assets: AssetFiles) -> None:
    """evaluate.py: values go to the synthetic benchmark's checkpoint model; micc/now take none."""
    def kwargs(*overrides: str) -> dict:
        return model_values(compose_config("evaluate", list(overrides)), overrides)

    ckpt = f"ckpt={assets['ckpt']}"
    assert kwargs("benchmark=synthetic", ckpt) == {}
    backend = kwargs("benchmark=synthetic", ckpt, "renderer.backend=torch")["model_values"]
    assert backend.values == {"renderer.backend": "torch"} and backend.options == ()
    arcface = ("benchmark=synthetic", ckpt, "identity=arcface_iresnet50")
    benchmark = instantiate(compose_config("evaluate", list(arcface)).benchmark, **kwargs(*arcface))
    with pytest.raises(ValueError, match=r"identity=arcface_iresnet50: ckpt=.* rebuilds"):
        benchmark.run()  # checked when the benchmark reads its checkpoint, before anything is reconstructed
    with pytest.raises(ValueError, match=r"renderer\.backend=torch: this benchmark scores reconstructions"):
        kwargs("benchmark=micc", "renderer.backend=torch")


def test_a_required_component_value_left_out_is_named_by_its_group() -> None:
    require_component_values(compose_config("fit", ["image=x.png"]))  # the defaults need no file
    cfg = compose_config("fit", ["image=x.png", "facemodel=bfm2009", "facemodel.path=m.mat", "texture=pca"])
    local = rf"Name it in {CONF}/local/paths\.yaml \(a clone\) or .*/no_user_config/local/paths\.yaml"
    with pytest.raises(ValueError, match=r"^paths\.bfm2009_landmarks \(facemodel\.landmark_indices\), "
                                         rf"paths\.texture_pca \(texture\.path\) not set: .*{local}"):
        require_component_values(cfg)
    cfg = compose_config("fit", ["image=x.png", "texture=pca", "texture.path=???"])
    with pytest.raises(ValueError, match=r"^texture\.path=\.\.\. missing"):
        require_component_values(cfg)


def test_paths_group_names_every_asset_once() -> None:
    """Every file key of every component option refers to the paths group (``${paths.<key>}``), and every paths key
    is used by some option: a command names the component, the local paths file the files."""
    paths = OmegaConf.load(CONF / "paths" / "default.yaml")
    referenced = set()
    for group, option in group_options(*COMPONENTS, "landmarks", "benchmark", "model"):
        config = OmegaConf.load(CONF / group / f"{option}.yaml")
        flat = OmegaConf.to_container(config, resolve=False)
        items = [*flat.items(), *flat.get("regressor", {}).items()]
        for key, value in items:
            if key in ("path", "weights", "landmark_indices", "uv_mesh", "data_dir", "landmarks_dir", "root",
                       "heatmap_weights"):  # fmt: skip
                assert isinstance(value, str) and value.startswith("${paths."), f"{group}/{option}: {key}: {value}"
                referenced.add(value.removeprefix("${paths.").removesuffix("}"))
    assert referenced == set(paths), f"paths keys no option uses: {set(paths) - referenced}"


#: Test sizes for the options that need them (the documented commands use the defaults).
SMALL = {"identity": ["identity.layers=[layer2]"], "heatmaps": ["heatmaps.crop_size=64", "heatmaps.heatmap_size=32"]}


@pytest.mark.parametrize(("group", "option"), ASSET_OPTIONS)
def test_an_asset_option_builds_from_the_local_paths_file_alone(
    group: str, option: str, assets: AssetFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the user's local paths file (docs/assets.md), ``<group>=<option>`` is the whole command: the option
    builds from the files it names. Without it, a required file is named by its paths key."""
    paths = OmegaConf.load(CONF / "paths" / "default.yaml")
    text = (CONF / group / f"{option}.yaml").read_text()
    keys = [key for key in paths if f"${{paths.{key}}}" in text]
    assert keys, f"{group}/{option} names no paths key"
    if group in COMPONENTS and any(OmegaConf.is_missing(paths, key) for key in keys):
        with pytest.raises(ValueError, match=rf"^paths\.{keys[0]} \({group}\.\w+\).* not set"):
            require_component_values(compose_config("fit", ["image=x.png", f"{group}={option}"]))
    monkeypatch.setenv("FASTGANFIT_CONFIG_DIR", str(tmp_path))
    assets.write_local_paths(tmp_path)
    cfg = compose_config("fit", ["image=x.png", f"{group}={option}", *SMALL.get(group, [])])
    require_component_values(cfg)
    named = {str(assets.folder / assets.FILES[assets.PATHS[key]]) for key in keys}
    assert {str(cfg.paths[key]) for key in keys} == named
    assets.write_referenced(cfg[group])
    built = instantiate(cfg[group], _convert_="all")
    assert type(built).__module__.startswith("fastganfit."), type(built)
