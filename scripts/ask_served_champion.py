"""Serve the champion with `mlflow models serve` on 127.0.0.1, ask it questions over HTTP, print the answers, stop.

    python scripts/ask_served_champion.py [--model models:/squad-qa@champion] [--data SQUAD.json] [--count 3]

The last step of `make demo`: it shows the registered champion answering real HTTP requests through the
served-model contract ({question, context} in; {answer, no_answer_probability, score} out). Exits non-zero if
the server does not come up or does not answer with HTTP 200.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from qa_common.tracking.servers import ServerDidNotStart, free_port, running

REPO = Path(__file__).resolve().parents[1]


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
    try:
        with running(["models", "serve", "-m", args.model, "--env-manager", "local", "-h", "127.0.0.1", "-p",
                      str(port)], f"http://127.0.0.1:{port}/ping", timeout_s=args.timeout):
            records = [{"question": e.question, "context": e.context} for e in examples]
            request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                             data=json.dumps({"inputs": records}).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=60) as response:
                answers = json.loads(response.read())["predictions"]
    except ServerDidNotStart as error:
        print(error, file=sys.stderr)
        return 1
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


if __name__ == "__main__":
    sys.exit(main())
