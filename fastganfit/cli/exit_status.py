"""The exit status every entry point ends with: 0 all done, 1 some inputs failed (or the run failed), 2 a bad
configuration or argument (docs/fitting.md, section "Exit status").

Hydra exits 1 on an error in the configuration (an unknown override or config option, a malformed value, a
missing mandatory value): the status of a failed input. :func:`exit_status` turns those into 2.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

DONE, FAILED, USAGE = 0, 1, 2
#: What Hydra and OmegaConf raise for a configuration that cannot be composed, resolved or instantiated.
CONFIGURATION_ERRORS = (HydraException, OmegaConfBaseException)


def exit_status(main: Callable[[], Any]) -> Callable[[], Any]:
    """Wrap a ``@hydra.main`` function so that a configuration error exits 2: Hydra prints the error and exits 1
    (the error is the exit's context), or raises it with ``HYDRA_FULL_ERROR=1``. Statuses the job sets are kept."""

    @functools.wraps(main)
    def run() -> Any:
        try:
            return main()
        except SystemExit as exit:
            if exit.code == FAILED and isinstance(exit.__context__, CONFIGURATION_ERRORS):
                print(f"{sys.argv[0]}: error: bad configuration or argument (exit status {USAGE})", file=sys.stderr)
                sys.exit(USAGE)
            raise
        except CONFIGURATION_ERRORS:
            sys.excepthook(*sys.exc_info())
            sys.exit(USAGE)

    return run
