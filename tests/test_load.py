"""The served champion under load, over its limits and on the loopback interface only (issue 11).

One `mlflow models serve` of the champion, started the way scripts/reliability_load.py starts it and with every
request limit set through its SQUAD_QA_MAX_* environment variable: a short load with bad requests mixed in
(zero 5xx, every good request answered as when alone, memory flat), each limit refused with its message, a
50 MB body refused without an echo and without stopping the server, and nothing listening beyond 127.0.0.1.
`make reliability` runs the same load for minutes.
"""

from __future__ import annotations

import ast
import http.client
import importlib.util
import json
import re
import sys
from pathlib import Path

import psutil
import pytest
from e2e import REPO, job_environment

from qa_common.serving import LIMIT_VARIABLES, ServingLimits

CHAMPION_URI = "models:/squad-qa@champion"
MIB = 1024 * 1024
# Small enough to refuse cheaply, large enough for every sample question the load sends (contexts up to 800
# characters, questions up to 122).
LIMITS = ServingLimits(max_records=16, max_question_chars=200, max_context_chars=2_000, max_request_chars=10_000)


def _load_script():
    spec = importlib.util.spec_from_file_location("reliability_load", REPO / "scripts" / "reliability_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


reliability_load = _load_script()


@pytest.fixture(scope="module")
def served(champion_job, tmp_path_factory):
    """(port, pid) of the champion served with the LIMITS above, set through the environment."""
    environment = job_environment(champion_job.workdir)
    environment.update({variable: str(getattr(LIMITS, name)) for name, variable in LIMIT_VARIABLES.items()})
    environment["MLFLOW_HOST"] = "0.0.0.0"  # what -h must win over
    log = tmp_path_factory.mktemp("load") / "server.log"
    with reliability_load.serving(CHAMPION_URI, cwd=champion_job.workdir, env=environment, log=log) as server:
        yield server


def post(port: int, body: bytes, content_type: str = "application/json") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_under_load_with_bad_requests_mixed_in(served):
    port, pid = served
    figures = reliability_load.measure(
        port, pid, clients=4, requests=400, seconds=60, bad_every=3, huge_mb=50, examples=20,
        bad=reliability_load.bad_requests(LIMITS.max_context_chars, LIMITS.max_records))
    print("\n".join(reliability_load.describe(figures)))
    report = figures.report
    assert report.problems == [] and report.connection_errors == 0
    assert report.requests == 400
    assert report.statuses == {"2xx": 267, "4xx": 133}
    assert len(report.good_latencies_s) == 267 and report.percentile_ms(report.good_latencies_s, 99) < 5_000
    refused = {name: status for name, status in report.refusals}
    assert refused["malformed JSON"] == 400 and refused["too many records"] == refused["context over the limit"] == 413
    assert refused["wrong content type"] == 415
    assert figures.growth_second_half < 32 * MIB
    status, answer_bytes, _ = figures.huge
    assert status == 413 and answer_bytes < 2_000  # the refusal does not echo the 50 MB back
    assert figures.good_after_huge is True
    assert reliability_load.failures(figures, 32 * MIB) == []


LONG = "a" * (LIMITS.max_context_chars + 1)
RECORD = {"question": "Who ruled the duchy?", "context": "The duchy was ruled by Richard I."}


@pytest.mark.parametrize(("payload", "message"), [
    pytest.param({"inputs": [RECORD] * (LIMITS.max_records + 1)},
                 f"request too large: {LIMITS.max_records + 1} records in one request; the limit is "
                 f"{LIMITS.max_records}", id="records"),
    pytest.param({"inputs": [RECORD, {**RECORD, "question": "q" * (LIMITS.max_question_chars + 1)}]},
                 f"request too large: record 1: question has {LIMITS.max_question_chars + 1} characters; the limit "
                 f"is {LIMITS.max_question_chars}", id="question"),
    pytest.param({"inputs": [{**RECORD, "context": LONG}]},
                 f"request too large: record 0: context has {len(LONG)} characters; the limit is "
                 f"{LIMITS.max_context_chars}", id="context"),
    pytest.param({"dataframe_records": [{**RECORD, "context": "b" * 1_500}] * 7},
                 f"request too large: the request holds {7 * (1_500 + len(RECORD['question']))} characters of "
                 f"questions and contexts; the limit is {LIMITS.max_request_chars}", id="request"),
    pytest.param({"inputs": [{**RECORD, "context": 5}]},
                 "invalid request: record 0: field 'context' must be a string, got int", id="not a limit"),
])
def test_each_limit_set_through_the_environment_is_refused_naming_it(served, payload, message):
    port, _ = served
    status, body = post(port, json.dumps(payload).encode())
    assert status == (413 if message.startswith("request too large") else 400), body[:500]
    answer = json.loads(body)
    assert answer["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer["message"] == message  # the whole message: mlflow's echo of the request is kept out


def test_a_50_mb_body_is_refused_and_the_server_goes_on(served):
    port, pid = served
    before = reliability_load.process_tree_rss(pid)
    body = json.dumps({"inputs": [{**RECORD, "context": "c" * (50 * MIB)}]}).encode()
    status, answer = post(port, body)
    assert status == 413 and json.loads(answer)["message"] == (
        f"request too large: record 0: context has {50 * MIB} characters; the limit is {LIMITS.max_context_chars}")
    status, answer = post(port, json.dumps({"inputs": [RECORD]}).encode())
    assert status == 200 and len(json.loads(answer)["predictions"]) == 1
    # Reading, parsing and refusing it costs memory that is not all handed back; bounded, not a leak per request.
    assert reliability_load.process_tree_rss(pid) - before < 400 * MIB


def test_the_server_listens_on_127_0_0_1_only(served):
    port, pid = served
    root = psutil.Process(pid)
    listening = {(connection.laddr.ip, connection.laddr.port)
                 for process in [root, *root.children(recursive=True)]
                 for connection in process.net_connections(kind="inet") if connection.status == psutil.CONN_LISTEN}
    assert listening == {("127.0.0.1", port)}  # -h 127.0.0.1 won over MLFLOW_HOST=0.0.0.0 in its environment


def test_mlflow_models_serve_defaults_to_127_0_0_1_but_reads_mlflow_host():
    from mlflow.models.cli import serve

    (host,) = [option for option in serve.params if option.name == "host"]
    assert host.default == "127.0.0.1" and host.envvar == "MLFLOW_HOST"


def _server_commands(path: Path) -> list[list[str]]:
    """The lists in ``path`` that start an mlflow server (["models", "serve", ...] or ["server", ...]), with names
    of module-level string constants resolved and anything else as "?"."""
    tree = ast.parse(path.read_text())
    constants = {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                 for target in node.targets if isinstance(target, ast.Name)}

    def word(item: ast.expr) -> str:
        if isinstance(item, ast.Constant) and isinstance(item.value, str):
            return item.value
        return constants.get(item.id, "?") if isinstance(item, ast.Name) else "?"

    commands = []
    for node in ast.walk(tree):
        if isinstance(node, ast.List):
            words = [word(item) for item in node.elts]
            if words[:2] == ["models", "serve"] or words[:1] == ["server"]:
                commands.append(words)
    return commands


def test_every_server_our_scripts_and_tests_start_binds_127_0_0_1():
    this_file = Path(__file__).resolve()
    sources = [path for path in sorted((REPO / "scripts").glob("*.py")) + sorted((REPO / "tests").glob("*.py"))
               if path.resolve() != this_file]
    commands = {path.name: _server_commands(path) for path in sources}
    assert {"ask_served_champion.py", "ui_screenshots.py", "reliability_load.py", "test_serving.py"} <= {
        name for name, found in commands.items() if found}
    for name, found in commands.items():
        for command in found:
            flags = [index for index, word in enumerate(command) if word in ("-h", "--host")]
            assert flags and all(command[index + 1] == "127.0.0.1" for index in flags), (name, command)
    for path in [*sources, REPO / "Makefile", REPO / "MLproject"]:
        assert not re.search(r"0\.0\.0\.0", path.read_text()), path
