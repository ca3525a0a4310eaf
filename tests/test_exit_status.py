"""Exit status of the entry points: 0 all done, 1 some inputs failed, 2 a bad configuration or argument (Hydra's
own configuration errors exit 1 unless fastganfit.cli.exit_status wraps the entry point)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from fastganfit.cli.exit_status import USAGE, exit_status

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("script", "arguments"), [
    ("fit.py", ["image=x.jpg", "no_such_option=1"]),
    ("train.py", ["experiment=demo", "trainer=no_such_trainer"]),
])  # fmt: skip
def test_configuration_errors_exit_2(tmp_path: Path, script: str, arguments: list[str]) -> None:
    command = [sys.executable, str(REPO / script), *arguments, f"hydra.run.dir={tmp_path}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert result.returncode == USAGE, result.stderr[-2000:]
    assert "bad configuration or argument" in result.stderr and "Traceback" not in result.stderr


def test_the_jobs_own_status_is_kept_and_configuration_errors_become_2() -> None:
    def failed_inputs() -> None:
        sys.exit(1)

    def composition_error() -> None:  # what Hydra's run_and_report does: print, then exit 1 inside its except
        try:
            raise ConfigCompositionException("Could not override 'x'")
        except Exception:
            sys.exit(1)

    def full_error() -> None:  # HYDRA_FULL_ERROR=1: the error itself
        raise ConfigCompositionException("Could not override 'x'")

    def crash() -> None:
        try:
            raise RuntimeError("a bug")
        except Exception:
            sys.exit(1)

    for function, status in ((failed_inputs, 1), (composition_error, USAGE), (full_error, USAGE), (crash, 1)):
        with pytest.raises(SystemExit) as exited:
            exit_status(function)()
        assert exited.value.code == status, function.__name__
