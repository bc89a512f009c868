# PYTHON_ARGCOMPLETE_OK: `python -m runbooks` answers tab completion (argcomplete's global completion)
"""`python -m runbooks` and `azure-backup-runbooks`: run the command, then end the process without tearing the
interpreter down.

CPython's exit begins by joining non-daemon threads, running the atexit handlers and flushing stdout and
stderr; then it frees every module, and the Azure SDK's are hundreds of thousands of objects: about a third
of a short `diagnose` (benchmarks/vs_az.py, issue #13), for memory the operating system frees anyway. So
after the command, those first steps are done as CPython does them (a failed flush exits 120, as CPython's
does) and the process ends with os._exit; where the interpreter lacks `atexit._run_exitfuncs`, it exits as
usual. An exception out of the command takes the usual way (its traceback, exit 1).
"""

import atexit
import os
import sys
import threading

from .cli import main


def _leave(code: int) -> None:
    """Exit with `code` as CPython would, minus the module teardown."""
    run_exitfuncs = getattr(atexit, "_run_exitfuncs", None)
    shutdown = getattr(threading, "_shutdown", None)
    if run_exitfuncs is None or shutdown is None:
        sys.exit(code)
    shutdown()  # join the threads that are not daemons, as the interpreter's exit does first
    run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - CPython's own exit turns a failed flush into 120
            code = code or 120
    os._exit(code & 0xFF)


def run() -> None:
    """The entry point of `python -m runbooks` and of the `azure-backup-runbooks` console script."""
    _leave(main())


if __name__ == "__main__":
    run()
