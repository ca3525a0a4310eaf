"""train.py stopped by SIGTERM or Ctrl+C: the step finishes, checkpoints/last.ckpt is saved, exit 143, resume works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException
from test_fast_ganfit import adam_steps, run_train, tiny_train_overrides

from fastganfit.data.synthetic import generate_synthetic_faces
from fastganfit.training.signals import SIGTERM_EXIT_STATUS, CheckpointOnSignal

REPO = Path(__file__).resolve().parent.parent
MANY_STEPS = 1000


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Four synthetic 64 px faces in two shards (enough for one DataLoader worker)."""
    folder = tmp_path_factory.mktemp("synthetic")
    generate_synthetic_faces(folder, n=4, seed=0, crop_size=64, max_per_shard=2, progress=False)
    return folder


def start_train(run_dir: Path, shards: Path, *overrides: str) -> subprocess.Popen:
    """A long tiny alignment run in its own process group (so a Ctrl+C can reach all of its processes)."""
    command = [
        sys.executable,
        str(REPO / "train.py"),
        "experiment=fast_align",
        f"trainer.max_steps={MANY_STEPS}",
        f"hydra.run.dir={run_dir}",
        *tiny_train_overrides(shards),
        f"callbacks.checkpoint.every_n_train_steps={MANY_STEPS}",  # only the signal writes a checkpoint
        *overrides,
    ]
    log = (run_dir.parent / f"{run_dir.name}.log").open("w")
    return subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_step(process: subprocess.Popen, run_dir: Path, step: int, timeout_s: float = 400) -> None:
    """Wait until the run has logged the image grid of ``step`` (one per step with the tiny overrides)."""
    deadline = time.monotonic() + timeout_s
    while not list(run_dir.glob(f"logs/*/images/train_reconstruction_{step:07d}.png")):
        log = (run_dir.parent / f"{run_dir.name}.log").read_text()
        assert process.poll() is None, f"train.py ended early ({process.returncode}):\n{log[-3000:]}"
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"train.py did not reach step {step} in {timeout_s} s:\n{log[-3000:]}")
        time.sleep(0.2)


def stop_and_check_checkpoint(process: subprocess.Popen, run_dir: Path, send) -> dict:
    """Send a signal after step 2, expect exit 143 and a consistent checkpoint from a later step."""
    wait_for_step(process, run_dir, 2)
    send(process)
    try:
        returncode = process.wait(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    log = (run_dir.parent / f"{run_dir.name}.log").read_text()
    assert returncode == SIGTERM_EXIT_STATUS, log[-3000:]
    assert "training stopped by a signal" in log
    checkpoints = run_dir / "checkpoints"
    assert sorted(path.name for path in checkpoints.iterdir()) == ["last.ckpt"]  # no partial file left behind
    saved = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)
    step = saved["global_step"]
    # the step that logged image 2 was finished: optimiser, schedule and counter agree
    assert 3 <= step < MANY_STEPS
    assert adam_steps(saved) == {step} and saved["lr_schedulers"][0]["last_epoch"] == step
    assert any(key.startswith("regressor.") for key in saved["state_dict"])
    return saved


@pytest.mark.slow
def test_sigterm_saves_checkpoint_and_resume_continues(shards: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "stopped"
    process = start_train(run_dir, shards)
    saved = stop_and_check_checkpoint(process, run_dir, lambda p: p.send_signal(signal.SIGTERM))
    step = saved["global_step"]

    resumed = run_train(
        "experiment=fast_align",
        f"trainer.max_steps={step + 2}",
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"hydra.run.dir={tmp_path / 'resumed'}",
        *tiny_train_overrides(shards),
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert final["global_step"] == step + 2 and adam_steps(final) == {step + 2}
    logged = sorted(path.name for path in (tmp_path / "resumed").glob("logs/*/images/train_reconstruction_*.png"))
    assert logged == [f"train_reconstruction_{step:07d}.png", f"train_reconstruction_{step + 1:07d}.png"]


@pytest.mark.slow
def test_ctrl_c_with_dataloader_worker_saves_checkpoint(shards: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "interrupted"
    process = start_train(run_dir, shards, "data.num_workers=1")
    # a terminal's Ctrl+C goes to the whole foreground process group: the trainer and its DataLoader worker
    stop_and_check_checkpoint(process, run_dir, lambda p: os.killpg(p.pid, signal.SIGINT))


class _Stop(L.Callback):
    """Raises Lightning's SIGTERMException after the first training step, as its loop does after a SIGTERM."""

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        raise SIGTERMException


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(tmp_path: Path, callbacks: list[L.Callback]) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=5, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, callbacks=callbacks,
    )
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 2)), batch_size=2)
    trainer.fit(_Tiny(), data)
    return trainer


@pytest.fixture
def interactive_sigint():
    """Python's own Ctrl+C handler for the test (a job started in the background inherits SIGINT ignored)."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, inherited)


def test_callback_saves_on_sigterm_only_and_restores_sigint(tmp_path: Path, interactive_sigint: None) -> None:
    before = signal.getsignal(signal.SIGINT)
    assert before is signal.default_int_handler
    callback = CheckpointOnSignal(tmp_path / "checkpoints")
    with pytest.raises(SIGTERMException) as stopped:
        _fit(tmp_path, [callback, _Stop()])
    assert stopped.value.code == SIGTERM_EXIT_STATUS
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 1
    # after fit, Ctrl+C behaves as before (Lightning's teardown may re-install the callback's handler, which
    # then passes the signal on and gives SIGINT back)
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before
    _fit(tmp_path / "plain", [CheckpointOnSignal(tmp_path / "plain" / "checkpoints")])
    assert not (tmp_path / "plain" / "checkpoints").exists() and signal.getsignal(signal.SIGINT) is before
    with pytest.raises(ValueError, match="filename"):
        CheckpointOnSignal(tmp_path, filename="sub/last")
