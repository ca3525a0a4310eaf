"""Exit status of the entry points: 0 all done, 1 some inputs failed, 2 a bad configuration or argument (Hydra's
own configuration errors exit 1 unless fastganfit.cli.exit_status wraps the entry point)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException

from fastganfit.cli import evaluate, fit, train
from fastganfit.cli.exit_status import USAGE, exit_status


@pytest.mark.parametrize(("main", "arguments"), [
    (fit.main, ["image=x.jpg", "no_such_option=1"]),
    (train.main, ["experiment=demo", "trainer=no_such_trainer"]),
    (evaluate.main, ["benchmark=micc", "benchmark.no_such_key=3"]),
])  # fmt: skip
def test_configuration_errors_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                     main, arguments: list[str]) -> None:  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["entry.py", *arguments, f"hydra.run.dir={tmp_path}"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == USAGE
    stderr = capsys.readouterr().err
    assert "bad configuration or argument" in stderr and "Traceback" not in stderr


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
