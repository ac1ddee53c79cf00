"""Run the console scripts in-process, without a fresh interpreter per call.

The same guard, exit codes and output as a subprocess.

A subprocess pays the interpreter and import start-up (1-3 s on the CI machine) on every call;
the suite makes a few hundred CLI calls, so running them in-process is most of what keeps
``make test`` within its budget. What a subprocess would give is reproduced: ``sys.argv``,
the working directory and environment variables are set for the call and restored after it;
stdout and stderr are captured; ``SystemExit`` becomes the return code; any other exception
becomes exit code 1 with its traceback on stderr, as the interpreter would print it.

What in-process cannot show (lazy imports at start-up, signal handling, a crash of the
interpreter itself) stays covered by the true subprocess tests in test_startup.py,
test_packaging.py, test_chaos.py and the subprocess smoke tests of each CLI.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import import_module
from pathlib import Path

ENTRY_POINTS = {
    "planner": "planner.cli.simulate:main",
    "planner-roofline": "planner.cli.roofline:main",
    "planner-size": "planner.cli.size:main",
    "planner-roi": "planner.cli.roi:main",
}


def _entry_point(script: str) -> Callable[[], None]:
    module_name, _, function = ENTRY_POINTS[Path(script).name].partition(":")
    entry: Callable[[], None] = getattr(import_module(module_name), function)
    return entry


@contextlib.contextmanager
def _process_state(
    argv: Sequence[str], cwd: Path | None, env: Mapping[str, str] | None
) -> Iterator[None]:
    """Set argv, cwd and environment for one call and restore them afterwards."""
    saved_argv, saved_cwd, saved_env = sys.argv, Path.cwd(), dict(os.environ)
    root_logger = logging.getLogger()
    saved_handlers, saved_level = list(root_logger.handlers), root_logger.level
    sys.argv = list(argv)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        # Hydra points the root logger at the run's log file; close it so the run directory can
        # be removed and the next call starts as a fresh process would.
        for handler in root_logger.handlers:
            if handler not in saved_handlers:
                handler.close()
        root_logger.handlers[:] = saved_handlers
        root_logger.setLevel(saved_level)
        _clear_hydra()


def _reattach_stale_log_streams() -> None:
    """Point log handlers whose stream was closed (an earlier test's capture) at stderr.

    Libraries create their handlers once per process (optuna on import, Hydra per run) with
    the ``sys.stderr`` of that moment; in one process that can be an earlier test's captured
    stream, closed since. A fresh process would log to its own stderr, so this one does too.
    """
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            stream = getattr(handler, "stream", None)
            if isinstance(handler, logging.StreamHandler) and getattr(stream, "closed", False):
                handler.stream = sys.stderr  # not setStream: it flushes the closed stream


def _clear_hydra() -> None:
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


def run_cli(
    script: str | Path,
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run console script ``script`` (a name or a path ending in it) with ``args`` in-process.

    Returns:
        What ``subprocess.run(..., capture_output=True, text=True)`` would: the argv, the exit
        code (0, or the ``SystemExit`` code, or 1 for an uncaught exception) and the captured
        stdout and stderr.
    """
    name = Path(script).name
    argv = [str(script), *map(str, args)]
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with (
        _process_state(argv, cwd, env),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        _reattach_stale_log_streams()
        try:
            _entry_point(name)()
        except SystemExit as exit_:
            code = _exit_code(exit_.code, stderr)
        except Exception:
            traceback.print_exc(file=stderr)
            code = 1
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def _exit_code(code: object, stderr: io.StringIO) -> int:
    """The process exit status ``sys.exit(code)`` gives (a message is printed, status 1)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=stderr)
    return 1
