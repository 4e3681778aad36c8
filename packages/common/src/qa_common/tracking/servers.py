"""Run an `mlflow` server command (`mlflow server`, `mlflow models serve`) in the background: start it, wait
until it answers, stop it with its workers. Used by the scripts and the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


class ServerDidNotStart(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running(arguments: Sequence[str], ready_url: str, *, cwd: Path | None = None,
            env: Mapping[str, str] | None = None, log: Path | None = None,
            timeout_s: float = 180.0) -> Iterator[subprocess.Popen]:
    """`mlflow *arguments` of this Python's environment in its own process session, yielded once ``ready_url``
    answers; stopped (the server and its workers) on exit.

    This Python's scripts go first on the server's PATH (the scoring server starts `uvicorn` by name). Output
    goes to ``log``, a temporary file when not given (not a pipe: one nobody reads would block the server).
    Raises ServerDidNotStart, with the end of the output, if the server exits or does not answer in time.
    """
    environment = dict(os.environ if env is None else env)
    environment["PATH"] = str(Path(sys.executable).parent) + os.pathsep + environment.get("PATH", "")
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(log or Path(scratch) / "server.log")
        with open(log, "w") as output:
            process = subprocess.Popen([str(Path(sys.executable).with_name("mlflow")), *arguments], cwd=cwd,
                                       env=environment, stdout=output, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    problem = f"exited ({process.returncode})" if process.poll() is not None else \
                        f"did not answer {ready_url} within {timeout_s:.0f} s"
                    raise ServerDidNotStart(f"mlflow {arguments[0]} {problem}:\n{log.read_text()[-4000:]}")
                try:
                    with urllib.request.urlopen(ready_url, timeout=5):
                        break
                except OSError:
                    time.sleep(0.5)
            yield process
        finally:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
            except ProcessLookupError:
                pass  # it had already exited
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)
