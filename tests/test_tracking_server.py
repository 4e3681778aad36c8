"""The real-server path: `mlflow server` (SQLite backend, proxied artifacts) on 127.0.0.1; a job logs and
registers through it; the REST API shows the run, its metrics and the champion; the champion loads back
through the server and answers."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request

import pytest
from e2e import (
    REGISTERED_MODEL,
    TRAIN_DATA,
    VALIDATION_DATA,
    describe,
    job_environment,
)

from qa_common.tracking.servers import free_port, running

START_TIMEOUT_S = 120


def get(base: str, path: str, **query) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}" if query else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tracking-server")
    port = free_port()
    command = ["server", "--backend-store-uri", f"sqlite:///{directory / 'server.db'}",
               "--artifacts-destination", str(directory / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/health", cwd=directory, env=job_environment(directory),
                 log=directory / "server.log", timeout_s=START_TIMEOUT_S):
        yield base, directory


def test_a_job_logs_and_registers_through_the_server_and_the_rest_api_shows_it(server, tmp_path):
    import sys

    base, server_directory = server
    environment = {**job_environment(tmp_path), "MLFLOW_TRACKING_URI": base}
    process = subprocess.run(
        [sys.executable, "-m", "qa_common.cli", "train", "bert_qa", "--preset", "tiny", "--train-data",
         str(TRAIN_DATA), "--eval-data", str(VALIDATION_DATA), "--max-eval-examples", "30", "--epochs", "1",
         "--export-onnx", "false", "--benchmark", "false", "--system-metrics", "false",
         "--output-dir", str(tmp_path / "out")],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600)
    assert process.returncode == 0, describe(process)
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()  # nothing local

    champion = get(base, "/api/2.0/mlflow/registered-models/alias", name=REGISTERED_MODEL,
                   alias="champion")["model_version"]
    assert champion["version"] == "1"
    run = get(base, "/api/2.0/mlflow/runs/get", run_id=champion["run_id"])["run"]
    metrics = {metric["key"]: metric["value"] for metric in run["data"]["metrics"]}
    assert metrics["eval_questions"] == 30.0 and 0.0 <= metrics["exact"] <= 100.0
    tags = {tag["key"]: tag["value"] for tag in run["data"]["tags"]}
    assert tags["adapter"] == "bert_qa" and run["info"]["status"] == "FINISHED"
    version_tags = {tag["key"]: tag["value"] for tag in champion["tags"]}
    assert version_tags["promotion_decision"] == "promoted" and float(version_tags["exact"]) == metrics["exact"]
    # Artifacts went through the server's proxy into its artifact destination.
    assert any((server_directory / "artifacts").rglob("squad_qa.json"))

    # Anyone pointed at the server loads the champion and gets the contract's answers.
    check = subprocess.run(
        [sys.executable, "-c",
         "import mlflow, pandas, json; m = mlflow.pyfunc.load_model('models:/squad-qa@champion'); "
         "print(json.dumps(m.predict(pandas.DataFrame([{'question': 'Who?', 'context': 'Rollo founded it.'}]))"
         ".to_dict(orient='records')))"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, describe(check)
    answers = json.loads(check.stdout.strip().splitlines()[-1])
    assert len(answers) == 1 and set(answers[0]) == {"answer", "no_answer_probability", "score"}
