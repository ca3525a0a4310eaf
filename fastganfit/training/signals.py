"""Clean stop of a training run on SIGTERM (and a first Ctrl+C): finish the step, save a checkpoint, exit 143."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

SIGTERM_EXIT_STATUS = 128 + signal.SIGTERM  # 143, the status of a process ended by SIGTERM


class CheckpointOnSignal(L.Callback):
    """Save ``<dirpath>/<filename>.ckpt`` when a run is stopped by SIGTERM, then let it exit with status 143.

    Lightning (2.x) handles SIGTERM during ``fit``: its handler sets ``trainer.received_sigterm`` and the training
    loop raises ``SIGTERMException`` once the current step is complete (optimiser and schedule stepped,
    ``global_step`` counted). This callback receives that exception in :meth:`on_exception`, saves a full
    checkpoint (weights, optimiser, schedule, loops; resume with ``ckpt_path=``) to a temporary file and renames it
    over the destination, so an existing checkpoint is never left half-written, and sets the exit status to 143 so
    that scripts and schedulers see an unfinished run (Lightning 2.6 itself exits 0). A SIGTERM that arrives during
    validation ends the validation early; the checkpoint holds every completed training step. Other exceptions are
    left alone (their state may be mid-step).

    Several processes (DDP): Lightning's own handler is racy. It forwards the signal to the other local ranks and
    runs a ``broadcast`` inside the signal handler, wherever rank 0 happens to be (mid-step, inside a gradient
    all-reduce's Python frame, in validation), and each rank then checks its own ``received_sigterm`` at the end
    of a step: rank 0 can stop after step N and enter the checkpoint's collectives while a rank whose forwarded
    signal has not landed yet starts step N+1 and waits in another collective, and both wait forever. So from
    ``on_train_start`` on, this callback's handler only notes the signal (on any rank), and at the end of every
    training batch the ranks agree on it with one ``reduce_boolean_decision`` (a collective every rank makes at the
    same point; Lightning already makes one per step); when any rank got the signal every rank sets
    ``received_sigterm`` there, so all stop after the same step.

    ``handle_sigint``: in single-process runs, the first Ctrl+C (SIGINT) during ``fit`` is turned into the same
    clean stop (DataLoader workers forked during ``fit`` ignore it, so they keep serving the last step); a
    second Ctrl+C goes to the previous handler (``KeyboardInterrupt``: Lightning stops at once, no checkpoint).
    Multi-process runs keep Lightning's Ctrl+C behaviour; stop them with SIGTERM to the main process.
    """

    def __init__(self, dirpath: str | os.PathLike, filename: str = "last", handle_sigint: bool = True) -> None:
        if not filename or Path(filename).name != filename:
            raise ValueError(f"CheckpointOnSignal: filename must be a file name without folders, got {filename!r}")
        self.path = Path(dirpath) / f"{filename}.ckpt"
        self.handle_sigint = handle_sigint
        self._owner_pid: int | None = None
        self._original_sigint: Any = None
        self._sigint_armed = False
        self._stop_requested = False

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Take over SIGINT (single process, main thread only) before the DataLoader workers are forked."""
        if self.handle_sigint and trainer.world_size == 1 and threading.current_thread() is threading.main_thread():
            self._owner_pid = os.getpid()
            self._original_sigint = signal.signal(signal.SIGINT, self._on_sigint)
            self._sigint_armed = True

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        """Several processes: replace Lightning's SIGTERM handler (installed after ``on_fit_start``) by one that only
        notes the signal; :meth:`on_train_batch_end` makes the ranks agree on it."""
        if trainer.world_size > 1 and threading.current_thread() is threading.main_thread():
            self._stop_requested = False
            signal.signal(signal.SIGTERM, self._note_sigterm)

    def _note_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = True

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:  # fmt: skip
        """Several processes: stop every rank after this step when any rank got SIGTERM (one collective per step)."""
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(self._stop_requested, all=False):
            trainer._signal_connector.received_sigterm = True  # Lightning raises SIGTERMException after this step

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._owner_pid:
            return  # a forked DataLoader worker: the training process decides
        if not self._sigint_armed:  # outside fit (Lightning's teardown may re-install this handler): as before
            self._restore_sigint()
            signal.raise_signal(signal.SIGINT)
            return
        self._restore_sigint()
        print(
            f"Ctrl+C: finishing the current step, then saving {self.path} (press Ctrl+C again to abort at once)",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGTERM)

    def _restore_sigint(self) -> None:
        """Put the SIGINT handler from before ``fit`` back (a no-op if this callback never took SIGINT over)."""
        self._sigint_armed = False
        if self._owner_pid == os.getpid() and threading.current_thread() is threading.main_thread():
            original = self._original_sigint
            signal.signal(signal.SIGINT, signal.SIG_DFL if original is None else original)

    def on_exception(self, trainer: L.Trainer, module: L.LightningModule, exception: BaseException) -> None:
        """On ``SIGTERMException``: save the checkpoint atomically (on every rank; rank 0 writes) and set the
        exit status to 143."""
        self._restore_sigint()
        if not isinstance(exception, SIGTERMException):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        trainer.save_checkpoint(partial)  # all ranks take part; rank 0 writes
        if trainer.is_global_zero:
            with open(partial, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(partial, self.path)
            message = f"training stopped by a signal after step {trainer.global_step}: saved {self.path}"
            print(message, file=sys.stderr, flush=True)
        exception.code = SIGTERM_EXIT_STATUS

    def teardown(self, trainer: L.Trainer, module: L.LightningModule, stage: str) -> None:
        """Give SIGINT back to its previous handler."""
        self._restore_sigint()
