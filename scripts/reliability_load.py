"""Load-test the served champion on 127.0.0.1: concurrent clients, bad requests mixed in, memory watched.

    python scripts/reliability_load.py [--model models:/squad-qa@champion] [--clients 8] [--requests 3000]
        [--seconds 120] [--bad-every 4] [--huge-mb 50] [--max-growth-mb 32]

Serves ``--model`` with `mlflow models serve --env-manager local -h 127.0.0.1` on a free port, answers each
sample question once alone (the reference answers, and a warm-up), then lets ``--clients`` threads send
requests over keep-alive connections until ``--requests`` are done or ``--seconds`` have passed. Every
``--bad-every``-th request is a bad one (malformed JSON, not UTF-8, wrong types, missing or empty fields, over a
limit, a wrong content type). It prints throughput, latency p50/p99, the count of 2xx/4xx/5xx, the server's RSS
(the whole process tree) before, during and after, and then sends a ``--huge-mb`` body and checks that the
server still answers. It fails (exit 1) on any 5xx, a bad request not answered 4xx, a good one not answered 200
with its reference answer, a connection error, or RSS growing more than ``--max-growth-mb`` from the first half
of the run to the second. With no champion registered in the tracking store it trains a throwaway tiny one in a
temporary store first. Part of `make reliability`; tests/test_load.py runs it small in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from qa_common.serving import ServingLimits

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "validation-v2.0-sample.json"
MIB = 1024 * 1024
JSON = "application/json"


@dataclass(frozen=True)
class Request:
    """One request of the mix: what to send, and for a good one the answers it must get."""

    name: str
    body: bytes
    content_type: str = JSON
    answers: tuple[str, ...] | None = None  # None: a bad request, which must get a 4xx

    @property
    def good(self) -> bool:
        return self.answers is not None


def good_requests(examples, records_per_request: int = 1) -> list[Request]:
    """Requests of ``records_per_request`` sample questions each (answers filled in by `reference_answers`)."""
    requests = []
    for start in range(0, len(examples) - records_per_request + 1, records_per_request):
        records = [{"question": e.question, "context": e.context}
                   for e in examples[start:start + records_per_request]]
        requests.append(Request(f"questions {start}+{records_per_request}", json.dumps({"inputs": records}).encode(),
                                answers=()))
    return requests


def bad_requests(max_context_chars: int = 100_000, max_records: int = 256) -> list[Request]:
    """Requests the server must refuse with a 4xx; each kind of mistake a client makes, and requests over a limit."""
    question, context = "Who ruled the duchy?", "The duchy was ruled by Richard I."

    def inputs(records) -> bytes:
        return json.dumps({"inputs": records}).encode()

    return [
        Request("malformed JSON", b'{"inputs": [{"question": "Who?", "context": '),
        Request("not UTF-8", b'{"inputs": [{"question": "\xff\xfe", "context": "x"}]}'),
        Request("a list, not an object", json.dumps([{"question": question, "context": context}]).encode()),
        Request("unknown input key", json.dumps({"records": [{"question": question, "context": context}]}).encode()),
        Request("question a number", inputs([{"question": 5, "context": context}])),
        Request("context a list", inputs([{"question": question, "context": [context]}])),
        Request("missing context", inputs([{"question": question}])),
        Request("empty question", inputs([{"question": " ", "context": context}])),
        Request("no records", inputs([])),
        Request("context over the limit", inputs([{"question": question, "context": "a" * (max_context_chars + 1)}])),
        Request("too many records", inputs([{"question": question, "context": context}] * (max_records + 1))),
        Request("wrong content type", inputs([{"question": question, "context": context}]), "text/plain"),
    ]


def post(connection: http.client.HTTPConnection, request: Request) -> tuple[int, bytes]:
    connection.request("POST", "/invocations", body=request.body, headers={"Content-Type": request.content_type})
    response = connection.getresponse()
    return response.status, response.read()


def answers_of(body: bytes) -> tuple[str, ...]:
    return tuple(row["answer"] for row in json.loads(body)["predictions"])


def reference_answers(port: int, requests: list[Request]) -> list[Request]:
    """Each good request answered alone, before any load: what it must get back under load too."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    answered = []
    for request in requests:
        status, body = post(connection, request)
        if status != 200:
            raise RuntimeError(f"{request.name}: HTTP {status} before any load: {body[:500]!r}")
        answered.append(Request(request.name, request.body, request.content_type, answers_of(body)))
    connection.close()
    return answered


def process_tree_rss(pid: int) -> int:
    """RSS of a process and all its descendants, in bytes (the mlflow CLI and the uvicorn worker it starts)."""
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


class MemorySampler(threading.Thread):
    """Samples the server tree's RSS every ``interval_s`` while running: (seconds since start, bytes)."""

    def __init__(self, pid: int, interval_s: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval_s = pid, interval_s
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()
        self.started_at = time.monotonic()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.monotonic() - self.started_at, process_tree_rss(self.pid)))
            self._stop_event.wait(self.interval_s)

    def stop(self) -> list[tuple[float, int]]:
        self._stop_event.set()
        self.join()
        return self.samples


@dataclass
class LoadReport:
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)  # "2xx"/"4xx"/"5xx"/"other" -> count
    good_latencies_s: list[float] = field(default_factory=list)
    bad_latencies_s: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # a good request not answered right, a bad one not 4xx
    connection_errors: int = 0
    refusals: Counter = field(default_factory=Counter)  # (bad request name, status) -> count

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def percentile_ms(self, latencies: list[float], q: float) -> float:
        if not latencies:
            return float("nan")
        ordered = sorted(latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 200 <= status < 600 else "other"


def run_load(port: int, good: list[Request], bad: list[Request], *, clients: int, max_requests: int,
             max_seconds: float, bad_every: int) -> LoadReport:
    """``clients`` threads send the mix until ``max_requests`` are sent or ``max_seconds`` have passed."""
    report, lock = LoadReport(), threading.Lock()
    order = itertools.count()
    good_cycle, bad_cycle = itertools.cycle(good), itertools.cycle(bad)
    deadline = time.monotonic() + max_seconds

    def next_request() -> Request | None:
        with lock:
            index = next(order)
            if index >= max_requests or time.monotonic() > deadline:
                return None
            return next(bad_cycle) if bad_every and index % bad_every == bad_every - 1 else next(good_cycle)

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while (request := next_request()) is not None:
            started = time.perf_counter()
            try:
                status, body = post(connection, request)
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                with lock:
                    report.connection_errors += 1
                    report.problems.append(f"{request.name}: {type(error).__name__}: {error}")
                continue
            elapsed = time.perf_counter() - started
            problem = None
            if request.good:
                if status != 200:
                    problem = f"{request.name}: HTTP {status}: {body[:300]!r}"
                elif answers_of(body) != request.answers:
                    problem = f"{request.name}: answered {answers_of(body)} under load, {request.answers} alone"
            elif not 400 <= status < 500:
                problem = f"bad request '{request.name}': HTTP {status}, not 4xx: {body[:300]!r}"
            with lock:
                report.statuses[status_class(status)] += 1
                (report.good_latencies_s if request.good else report.bad_latencies_s).append(elapsed)
                if not request.good:
                    report.refusals[(request.name, status)] += 1
                if problem:
                    report.problems.append(problem)
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.monotonic() - started
    return report


def growth_over_second_half(samples: list[tuple[float, int]], start_s: float, end_s: float) -> int:
    """Highest RSS in the second half of [start_s, end_s] minus the highest in the first half: near zero when
    memory is stable, the leak over half the run when it is not."""
    middle = (start_s + end_s) / 2
    first = [rss for t, rss in samples if start_s <= t < middle]
    second = [rss for t, rss in samples if middle <= t <= end_s]
    if not first or not second:
        raise RuntimeError("too few memory samples: run the load longer")
    return max(second) - max(first)


def answered_right(port: int, requests: list[Request]) -> bool:
    """Whether each good request gets HTTP 200 and its reference answers."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for request in requests:
            status, body = post(connection, request)
            if status != 200 or answers_of(body) != request.answers:
                return False
        return True
    finally:
        connection.close()


def huge_body(port: int, megabytes: float) -> tuple[int, int, float]:
    """Send one request whose body is about ``megabytes`` MiB (a single context that long); (status, size of the
    answer in bytes, seconds)."""
    context = "a" * int(megabytes * MIB)
    request = Request("huge body", json.dumps({"inputs": [{"question": "Who?", "context": context}]}).encode())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    started = time.perf_counter()
    status, body = post(connection, request)
    connection.close()
    return status, len(body), time.perf_counter() - started


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


def has_model(model: str, uri: str) -> bool:
    """Whether ``model`` (models:/NAME@ALIAS) resolves in the store at ``uri``."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, _, alias = model.removeprefix("models:/").partition("@")
    if not model.startswith("models:/") or not alias:
        return True  # not a registry alias: let the server say whether it exists
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return False  # asking would create an empty store
    try:
        MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(name, alias)
        return True
    except MlflowException:
        return False


def train_tiny_champion(directory: Path) -> None:
    """Register a tiny random BERT trained for a few steps as models:/squad-qa@champion in ``directory``."""
    train = REPO / "data" / "sample" / "train-v2.0-sample.json"
    command = [sys.executable, "-m", "qa_common.cli", "train", "bert_qa", "--preset", "tiny", "--train-data",
               str(train), "--eval-data", str(SAMPLE), "--max-train-examples", "40", "--max-eval-examples", "20",
               "--epochs", "1", "--export-onnx", "false", "--benchmark", "false", "--system-metrics", "false",
               "--output-dir", str(directory / "outputs")]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{directory / 'mlflow.db'}"}
    process = subprocess.run(command, cwd=directory, env=environment, capture_output=True, text=True)
    if process.returncode != 0:
        raise RuntimeError(f"training a tiny champion failed:\n{process.stderr[-3000:]}")


@dataclass
class Figures:
    """Everything a run measured, for printing and for the test."""

    report: LoadReport
    rss_idle: int
    rss_warm: int
    rss_peak: int
    rss_after: int
    growth_second_half: int
    huge: tuple[int, int, float] | None
    rss_after_huge: int | None
    good_after_huge: bool | None


SERVE_HOST = "127.0.0.1"


def serve_command(model: str, port: int) -> list[str]:
    """`mlflow models serve` bound to the loopback interface: -h is always given, since without it mlflow takes
    the host from MLFLOW_HOST when that is set (its own default is 127.0.0.1)."""
    return ["models", "serve", "-m", model, "--env-manager", "local", "-h", SERVE_HOST, "-p", str(port)]


@contextlib.contextmanager
def serving(model: str, *, cwd: Path | None = None, env: dict[str, str] | None = None,
            log: Path | None = None) -> Iterator[tuple[int, int]]:
    """Serve ``model`` on a free port of 127.0.0.1; yields (port, process id of the `mlflow` command)."""
    from qa_common.tracking.servers import free_port, running

    port = free_port()
    with running(serve_command(model, port), f"http://{SERVE_HOST}:{port}/ping", cwd=cwd, env=env,
                 log=log) as server:
        yield port, server.pid


def measure(port: int, pid: int, *, clients: int, requests: int, seconds: float, bad_every: int,
            huge_mb: float, records_per_request: int = 1, examples: int = 40,
            bad: list[Request] | None = None) -> Figures:
    """Measure the server on ``port`` (process tree of ``pid``) under load, as the module doc says."""
    from qa_common.data.readers import load_squad

    sample = load_squad(SAMPLE).examples[: examples * records_per_request]
    rss_idle = process_tree_rss(pid)
    good = reference_answers(port, good_requests(sample, records_per_request))
    bad = bad_requests() if bad is None else bad
    rss_warm = process_tree_rss(pid)
    sampler = MemorySampler(pid)
    sampler.start()
    load_started = time.monotonic() - sampler.started_at
    report = run_load(port, good, bad, clients=clients, max_requests=requests, max_seconds=seconds,
                      bad_every=bad_every)
    load_ended = time.monotonic() - sampler.started_at
    time.sleep(1.0)
    samples = sampler.stop()
    rss_after = process_tree_rss(pid)
    huge = rss_after_huge = good_after_huge = None
    if huge_mb:
        huge = huge_body(port, huge_mb)
        rss_after_huge = process_tree_rss(pid)
        good_after_huge = answered_right(port, good[:5])
    during = [rss for t, rss in samples if load_started <= t <= load_ended]
    return Figures(report=report, rss_idle=rss_idle, rss_warm=rss_warm, rss_peak=max(during, default=0),
                   rss_after=rss_after, growth_second_half=growth_over_second_half(samples, load_started, load_ended),
                   huge=huge, rss_after_huge=rss_after_huge, good_after_huge=good_after_huge)


def describe(figures: Figures) -> Iterator[str]:
    report = figures.report
    yield (f"{report.requests} requests in {report.seconds:.1f} s from the clients: "
           f"{report.requests / report.seconds:.1f} requests/s")
    yield (f"good: {len(report.good_latencies_s)}, latency p50 {report.percentile_ms(report.good_latencies_s, 50):.1f} "
           f"ms, p99 {report.percentile_ms(report.good_latencies_s, 99):.1f} ms; bad: "
           f"{len(report.bad_latencies_s)}, p50 {report.percentile_ms(report.bad_latencies_s, 50):.1f} ms")
    yield "HTTP status classes: " + ", ".join(f"{name} {report.statuses.get(name, 0)}"
                                              for name in ("2xx", "4xx", "5xx", "other"))
    yield f"connection errors: {report.connection_errors}"
    refusals = sorted(report.refusals.items())
    yield "bad requests answered: " + "; ".join(f"{name} -> {status} x{count}" for (name, status), count in refusals)
    yield (f"server RSS (process tree): idle {figures.rss_idle / MIB:.0f} MiB, after warm-up "
           f"{figures.rss_warm / MIB:.0f} MiB, peak under load {figures.rss_peak / MIB:.0f} MiB, after "
           f"{figures.rss_after / MIB:.0f} MiB; growth from the first half of the load to the second "
           f"{figures.growth_second_half / MIB:+.1f} MiB")
    if figures.huge:
        status, size, seconds = figures.huge
        yield (f"huge body: HTTP {status} in {seconds:.1f} s, answer {size:,} bytes; RSS after it "
               f"{figures.rss_after_huge / MIB:.0f} MiB; good requests answered after it: {figures.good_after_huge}")


def failures(figures: Figures, max_growth_bytes: int) -> list[str]:
    report = figures.report
    found = list(report.problems[:20])
    if report.statuses.get("5xx") or report.statuses.get("other"):
        found.append(f"{report.statuses.get('5xx', 0)} 5xx and {report.statuses.get('other', 0)} other answers")
    if figures.growth_second_half > max_growth_bytes:
        found.append(f"RSS grew {figures.growth_second_half / MIB:.1f} MiB over the second half of the load "
                     f"(bound {max_growth_bytes / MIB:.0f} MiB)")
    if figures.huge and not 400 <= figures.huge[0] < 500:
        found.append(f"the huge body got HTTP {figures.huge[0]}, not a 4xx")
    if figures.good_after_huge is False:
        found.append("good requests were not answered right after the huge body")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models:/squad-qa@champion")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3000, help="at most this many requests")
    parser.add_argument("--seconds", type=float, default=120.0, help="and for at most this long")
    parser.add_argument("--bad-every", type=int, default=4, help="every Nth request is a bad one (0: none)")
    parser.add_argument("--records", type=int, default=1, help="questions per good request")
    parser.add_argument("--huge-mb", type=float, default=50.0, help="size of the huge body sent after (0: none)")
    parser.add_argument("--max-growth-mb", type=float, default=32.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        environment = None
        cwd = None
        if not has_model(args.model, tracking_uri()):
            print(f"{args.model} is not in {tracking_uri()} (make demo registers one); training a throwaway tiny "
                  "champion in a temporary store", flush=True)
            train_tiny_champion(Path(scratch))
            environment = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{Path(scratch) / 'mlflow.db'}"}
            cwd = Path(scratch)
        print(f"Load test of {args.model} served on 127.0.0.1: {args.clients} clients, at most {args.requests} "
              f"requests or {args.seconds:.0f} s, every {args.bad_every}th request a bad one", flush=True)
        limits = ServingLimits.from_settings()  # the SQUAD_QA_MAX_* variables the server reads too
        with serving(args.model, cwd=cwd, env=environment) as (port, pid):
            figures = measure(port, pid, clients=args.clients, requests=args.requests, seconds=args.seconds,
                              bad_every=args.bad_every, huge_mb=args.huge_mb, records_per_request=args.records,
                              bad=bad_requests(limits.max_context_chars, limits.max_records))
    for line in describe(figures):
        print("  " + line)
    found = failures(figures, int(args.max_growth_mb * MIB))
    for problem in found:
        print("FAILED: " + problem, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
