"""Two architectures in one experiment: both train through the one job, compare ranks them side by side,
and whichever is champion is served by `mlflow models serve` behind the same contract (here lstm_qa)."""

from __future__ import annotations

import json

import pytest
from e2e import (
    REGISTERED_MODEL,
    TRAIN_DATA,
    VALIDATION_DATA,
    describe,
    job_environment,
    post,
    squad_qa,
    tracking_uri,
)

from qa_common.tracking.servers import free_port, running

QUICK = ["--train-data", str(TRAIN_DATA), "--eval-data", str(VALIDATION_DATA), "--max-eval-examples", "60",
         "--epochs", "1", "--batch-size", "32", "--benchmark-examples", "10", "--system-metrics", "false"]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("two-architectures")
    results = {}
    for arch in ("lstm_qa", "bert_qa"):  # lstm first: it becomes the champion the server serves
        process = squad_qa("train", arch, "--preset", "tiny", *QUICK, "--output-dir", str(workdir / arch),
                           cwd=workdir)
        assert process.returncode == 0, describe(process)
        results[arch] = process.stdout
    return workdir, results


def test_compare_lines_up_runs_of_both_architectures(two_runs):
    workdir, _ = two_runs
    from mlflow import MlflowClient

    process = squad_qa("compare", "--output-dir", str(workdir / "compare"), cwd=workdir)
    assert process.returncode == 0, describe(process)
    compare_run = process.stdout.rsplit("MLflow run ", 1)[1].split()[0]
    client = MlflowClient(tracking_uri=tracking_uri(workdir))
    table = json.loads(open(client.download_artifacts(compare_run, "leaderboard.json", str(workdir))).read())
    rows = {row["adapter"]: row for row in (dict(zip(table["columns"], values)) for values in table["data"])}
    assert set(rows) == {"bert_qa", "lstm_qa"}
    for row in rows.values():
        assert 0.0 <= row["exact"] <= 100.0 and row["bench_torch_latency_p50_ms"] > 0
        assert row["parameters_total"] > 0 and row["model_size_bytes"] > 0
    markdown = (workdir / "compare" / "leaderboard.md").read_text()
    assert "| lstm_qa | tiny |" in markdown and "| bert_qa | tiny |" in markdown
    for plot in ("accuracy_vs_latency.png", "accuracy_vs_size.png", "training_curves.png"):
        assert (workdir / "compare" / plot).stat().st_size > 1000


def test_the_served_lstm_champion_answers_and_rejects_bad_requests(two_runs):
    from mlflow import MlflowClient

    workdir, _ = two_runs
    client = MlflowClient(tracking_uri=tracking_uri(workdir), registry_uri=tracking_uri(workdir))
    champion = client.get_model_version_by_alias(REGISTERED_MODEL, "champion")
    assert champion.tags["adapter"] == "lstm_qa"
    port = free_port()
    command = ["models", "serve", "-m", f"models:/{REGISTERED_MODEL}@champion", "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port)]
    with running(command, f"http://127.0.0.1:{port}/ping", cwd=workdir, env=job_environment(workdir),
                 log=workdir / "server.log"):
        url = f"http://127.0.0.1:{port}/invocations"
        records = [{"question": "Who founded the Normans?", "context": "The Normans were founded by Rollo."},
                   {"question": "What colour is the sky?", "context": "Grass is green and the sea is deep."}]
        status, body = post(url, {"inputs": records})
        assert status == 200, body
        answers = body["predictions"]
        assert len(answers) == 2
        for record, answer in zip(records, answers):
            assert set(answer) == {"answer", "no_answer_probability", "score"}
            assert answer["answer"] == "" or answer["answer"] in record["context"]
            assert 0.0 <= answer["no_answer_probability"] <= 1.0
        status, body = post(url, {"inputs": [{"question": "Who?", "context": 5}]})
        assert status == 400 and "context" in json.dumps(body)
