"""Serve the champion with `mlflow models serve` on 127.0.0.1, ask it questions over HTTP, print the answers, stop.

    python scripts/ask_served_champion.py [--model models:/squad-qa@champion] [--data SQUAD.json] [--count 3]

The last step of `make demo`: it shows the registered champion answering real HTTP requests through the
served-model contract ({question, context} in; {answer, no_answer_probability, score} out). Exits non-zero if
the server does not come up or does not answer with HTTP 200.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _environment() -> dict[str, str]:
    """This environment with this Python's scripts first on PATH: the server starts `uvicorn` by name."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", "")}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/squad-qa@champion")
    parser.add_argument("--data", default=str(REPO / "data" / "sample" / "validation-v2.0-sample.json"))
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args()

    from qa_common.data.readers import load_squad

    examples = load_squad(args.data).examples[: args.count]
    port = free_port()
    mlflow_command = str(Path(sys.executable).with_name("mlflow"))
    server = subprocess.Popen(
        [mlflow_command, "models", "serve", "-m", args.model, "--env-manager", "local", "-h", "127.0.0.1",
         "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True, env=_environment())
    try:
        deadline = time.monotonic() + args.timeout
        while True:
            if server.poll() is not None:
                print(f"the server exited ({server.returncode}):\n{server.stderr.read()[-3000:]}", file=sys.stderr)
                return 1
            if time.monotonic() > deadline:
                print(f"the server did not answer /ping within {args.timeout:.0f} s", file=sys.stderr)
                return 1
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                    break
            except OSError:
                time.sleep(0.5)
        records = [{"question": e.question, "context": e.context} for e in examples]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                         data=json.dumps({"inputs": records}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                answers = json.loads(response.read())["predictions"]
        except urllib.error.HTTPError as error:
            print(f"HTTP {error.code}: {error.read().decode()[:2000]}", file=sys.stderr)
            return 1
        print(f"{args.model} served on 127.0.0.1:{port} answered:")
        for example, answer in zip(examples, answers):
            gold = " | ".join(dict.fromkeys(a.text for a in example.answers)) or "(no answer)"
            shown = answer["answer"] or "(no answer)"
            print(f"  Q: {example.question}\n     answer: {shown}  (no-answer probability "
                  f"{answer['no_answer_probability']:.3f}; gold: {gold})")
        return 0
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        except ProcessLookupError:
            pass  # it had already exited
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
