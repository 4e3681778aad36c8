"""Run an `mlflow` server command in the background for the scripts beside this file: start it, wait until it
answers, stop it with its workers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path


class ServerDidNotStart(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def mlflow_command() -> str:
    """The `mlflow` executable of this Python's environment."""
    return str(Path(sys.executable).with_name("mlflow"))


@contextlib.contextmanager
def running(arguments: Sequence[str], ready_url: str, timeout_s: float = 180.0) -> Iterator[subprocess.Popen]:
    """`mlflow *arguments` in its own process session, yielded once ``ready_url`` answers; stopped on exit.

    This Python's scripts go first on the server's PATH (the scoring server starts `uvicorn` by name). Raises
    ServerDidNotStart, with the end of the server's output, if it exits or does not answer in ``timeout_s``.
    """
    environment = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")}
    process = subprocess.Popen([mlflow_command(), *arguments], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, start_new_session=True, env=environment)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise ServerDidNotStart(f"mlflow {arguments[0]} exited ({process.returncode}):\n"
                                        f"{process.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                raise ServerDidNotStart(f"mlflow {arguments[0]} did not answer {ready_url} within {timeout_s:.0f} s")
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
