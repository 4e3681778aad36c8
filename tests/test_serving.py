"""The served model: the logged pyfunc (PyTorch and ONNX) in-process, then the real `mlflow models serve`
scoring server over HTTP, with the contract's answers and its 4xx refusals of bad requests."""

from __future__ import annotations

import pandas as pd
import pytest
from e2e import job_environment, post, read_json

from qa_common.serving import OUTPUT_FIELDS, ServingLimits
from qa_common.tracking.servers import free_port, running

CHAMPION_URI = "models:/squad-qa@champion"
SERVER_START_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def slice_examples(champion_job):
    from qa_common.data.readers import load_squad

    return load_squad(champion_job.eval_data).examples


@pytest.fixture(scope="module")
def served_predictions(champion_job, tmp_path_factory) -> dict[str, str]:
    """What the job itself answered for the evaluation slice (threshold applied), from its artifacts."""
    import mlflow

    mlflow.set_tracking_uri(champion_job.uri)
    path = mlflow.artifacts.download_artifacts(run_id=champion_job.run_id,
                                               artifact_path="evaluation/served_predictions.json",
                                               dst_path=str(tmp_path_factory.mktemp("served")))
    return read_json(path)


def records_of(examples) -> list[dict[str, str]]:
    return [{"question": example.question, "context": example.context} for example in examples]


@pytest.fixture
def champion_pyfunc(tracking):
    import mlflow

    return mlflow.pyfunc.load_model(CHAMPION_URI)


def test_the_champion_pyfunc_answers_like_the_job_did(champion_pyfunc, slice_examples, served_predictions):
    answers = champion_pyfunc.predict(pd.DataFrame(records_of(slice_examples)))
    assert list(answers.columns) == list(OUTPUT_FIELDS)
    assert len(answers) == len(slice_examples)
    assert list(answers["answer"]) == [served_predictions[example.id] for example in slice_examples]
    assert answers["no_answer_probability"].between(0.0, 1.0).all()
    unanswered = answers["answer"] == ""
    assert (answers.loc[unanswered, "score"] == answers.loc[unanswered, "no_answer_probability"]).all()
    assert answers.loc[~unanswered, "score"].between(0.0, 1.0).all()
    # It learned these questions: most answerable ones get their gold answer back.
    gold = [example.answers[0].text if example.answers else "" for example in slice_examples]
    correct = sum(1 for answer, expected in zip(answers["answer"], gold) if expected and answer == expected)
    assert correct >= 10


def test_the_onnx_variant_gives_the_same_answers(tracking, champion_job, champion_pyfunc, slice_examples):
    import mlflow

    onnx_pyfunc = mlflow.pyfunc.load_model(f"runs:/{champion_job.run_id}/model_onnx")
    assert onnx_pyfunc.unwrap_python_model().runtime == "onnx"
    assert type(onnx_pyfunc.unwrap_python_model().service.model.runner).__name__ == "OnnxRunner"
    frame = pd.DataFrame(records_of(slice_examples))
    torch_answers, onnx_answers = champion_pyfunc.predict(frame), onnx_pyfunc.predict(frame)
    assert list(onnx_answers["answer"]) == list(torch_answers["answer"])
    assert (onnx_answers["no_answer_probability"] - torch_answers["no_answer_probability"]).abs().max() < 1e-4
    assert (onnx_answers["score"] - torch_answers["score"]).abs().max() < 1e-4


def test_each_logged_variant_carries_only_its_own_weights(tracking, champion_job):
    from mlflow import MlflowClient

    client = MlflowClient()

    def files(variant):
        return {item.path.rpartition("/")[2]
                for item in client.list_artifacts(champion_job.run_id, f"{variant}/artifacts/model")}

    torch_files, onnx_files = files("model"), files("model_onnx")
    assert "model.safetensors" in torch_files and not any(".onnx" in name for name in torch_files)
    assert "model.onnx" in onnx_files and "model.safetensors" not in onnx_files
    assert {"squad_qa.json", "tokenizer_config.json"} <= torch_files & onnx_files


# The real scoring server.


@pytest.fixture(scope="module")
def server(champion_job, tmp_path_factory):
    """`mlflow models serve -m models:/squad-qa@champion --env-manager local`, stopped (with its workers) after."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    command = ["models", "serve", "-m", CHAMPION_URI, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with running(command, f"http://127.0.0.1:{port}/ping", cwd=champion_job.workdir,
                 env=job_environment(champion_job.workdir), log=log, timeout_s=SERVER_START_TIMEOUT_S):
        yield f"http://127.0.0.1:{port}/invocations"


def test_the_server_answers_inputs_records(server, slice_examples, served_predictions):
    examples = slice_examples[:2]
    status, body = post(server, {"inputs": records_of(examples)})
    assert status == 200, body
    predictions = body["predictions"]
    assert [set(row) for row in predictions] == [set(OUTPUT_FIELDS)] * 2
    assert [row["answer"] for row in predictions] == [served_predictions[example.id] for example in examples]
    assert all(0.0 <= row["no_answer_probability"] <= 1.0 for row in predictions)


def test_the_server_answers_a_batch_of_dataframe_records_one_row_each(server, slice_examples, served_predictions):
    examples = slice_examples[:7]
    status, body = post(server, {"dataframe_records": records_of(examples)})
    assert status == 200, body
    assert len(body["predictions"]) == 7
    assert [row["answer"] for row in body["predictions"]] == [served_predictions[example.id] for example in examples]
    assert any(row["answer"] for row in body["predictions"])


def test_the_server_answers_columns(server, slice_examples, served_predictions):
    examples = slice_examples[2:5]
    columns = {"question": [example.question for example in examples],
               "context": [example.context for example in examples]}
    status, body = post(server, {"inputs": columns})
    assert status == 200, body
    assert [row["answer"] for row in body["predictions"]] == [served_predictions[example.id] for example in examples]


QUESTION, CONTEXT = "Who ruled the duchy?", "The duchy was ruled by Richard I."
LIMITS = ServingLimits()


@pytest.mark.parametrize(("payload", "message"), [
    pytest.param({"inputs": [{"question": QUESTION}]}, "Model is missing inputs ['context']", id="missing context"),
    pytest.param({"dataframe_records": [{"question": QUESTION}]}, "Model is missing inputs ['context']",
                 id="missing context column"),
    pytest.param({"inputs": [{"question": 5, "context": CONTEXT}]},
                 "record 0: field 'question' must be a string, got int", id="question a number"),
    pytest.param({"dataframe_records": [{"question": QUESTION, "context": CONTEXT},
                                        {"question": 7, "context": CONTEXT}]},
                 "record 1: field 'question' must be a string, got int", id="question a number in a batch"),
    pytest.param({"inputs": [{"question": None, "context": CONTEXT}]}, "record 0: missing field 'question'",
                 id="question null"),
    pytest.param({"inputs": [{"question": QUESTION, "context": ""}]}, "record 0: field 'context' is empty",
                 id="empty context"),
    pytest.param({"inputs": [{"question": QUESTION, "context": "a" * (LIMITS.max_context_chars + 1)}]},
                 f"record 0: context has {LIMITS.max_context_chars + 1} characters; "
                 f"the limit is {LIMITS.max_context_chars}", id="context over the limit"),
    pytest.param({"inputs": [{"question": QUESTION, "context": CONTEXT}] * (LIMITS.max_records + 1)},
                 f"{LIMITS.max_records + 1} records in one request; the limit is {LIMITS.max_records}",
                 id="too many records"),
])
def test_the_server_refuses_bad_requests_naming_the_problem(server, payload, message):
    """400 for a malformed request, 413 (Content Too Large) for one over a limit."""
    status, body = post(server, payload)
    assert status == (413 if "the limit is" in message else 400), body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert message in body["message"]
