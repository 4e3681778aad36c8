"""The registry and its promotion gate, and bad input that must leave nothing behind.

The later jobs run in-process (`qa_common.cli.main`, the function behind the `squad-qa` command) against the
champion's MLflow store; what they add to it is rejected, so the champion stays version 1 for other tests.
"""

from __future__ import annotations

import json

import pytest
from e2e import (
    EXPERIMENT,
    REGISTERED_MODEL,
    TRAIN_DATA,
    VALIDATION_DATA,
    describe,
    experiment_runs,
    squad_qa,
    tracking_uri,
)


def train(capsys, *settings: str) -> tuple[int, str, str]:
    from qa_common.cli import main

    code = main(["train", "bert_qa", "--preset", "tiny", *settings])
    out, err = capsys.readouterr()
    return code, out, err


def champion_version(client) -> str:
    return str(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version)


def version_numbers(client) -> set[str]:
    return {str(version.version) for version in client.search_model_versions(f"name='{REGISTERED_MODEL}'")}


def test_the_first_version_was_promoted_without_a_champion_to_beat(tracking, champion_job):
    first = tracking.get_model_version(REGISTERED_MODEL, "1")
    assert first.run_id == champion_job.run_id
    assert first.tags["promotion_decision"] == "promoted"
    assert first.tags["promotion_reason"].startswith("no champion yet; exact ")
    assert champion_version(tracking) == "1"


def test_a_worse_model_on_the_same_data_is_registered_but_not_promoted(tracking, champion_job, capsys, tmp_path):
    """Run in file order, this is version 2."""
    next_version = str(max(int(number) for number in version_numbers(tracking)) + 1)
    code, out, err = train(capsys, *champion_job.settings, "--max-steps", "1", "--export-onnx", "false",
                           "--benchmark", "false", "--output-dir", str(tmp_path / "worse"))
    assert code == 0, err[-3000:]

    champion = tracking.get_model_version(REGISTERED_MODEL, "1")
    worse = tracking.get_model_version(REGISTERED_MODEL, next_version)
    worse_run = tracking.get_run(worse.run_id)
    assert worse_run.info.status == "FINISHED" and worse.run_id != champion_job.run_id
    assert worse_run.data.metrics["train_steps"] == 1
    assert worse.tags["eval_data_digest"] == champion.tags["eval_data_digest"]
    champion_exact, worse_exact = float(champion.tags["exact"]), float(worse.tags["exact"])
    assert worse_exact + 30.0 < champion_exact  # one step of training is far worse on what the champion learned
    reason = (f"exact {worse_exact:.4f} <= champion version 1 exact {champion_exact:.4f} "
              "on the same evaluation data")
    assert worse.tags["promotion_decision"] == "rejected"
    assert worse.tags["promotion_reason"] == reason
    assert f"registered squad-qa version {next_version}; not promoted: {reason}" in out
    assert champion_version(tracking) == "1"
    assert "previous-champion" not in tracking.get_registered_model(REGISTERED_MODEL).aliases


def test_a_model_evaluated_on_other_data_is_not_comparable(tracking, champion_job, capsys, tmp_path):
    code, out, err = train(capsys, "--train-data", str(TRAIN_DATA), "--max-train-examples", "40",
                           "--eval-data", str(VALIDATION_DATA), "--max-eval-examples", "20", "--max-steps", "1",
                           "--export-onnx", "false", "--benchmark", "false", "--output-dir", str(tmp_path / "other"))
    assert code == 0, err[-3000:]

    run = tracking.get_run(experiment_runs(champion_job.uri)[-1].info.run_id)
    version = tracking.get_model_version(REGISTERED_MODEL, run.data.tags["registered_version"])
    champion = tracking.get_model_version(REGISTERED_MODEL, "1")
    assert version.run_id == run.info.run_id
    assert version.tags["eval_data_digest"] != champion.tags["eval_data_digest"]
    assert version.tags["promotion_decision"] == "rejected"
    assert version.tags["promotion_reason"] == (
        f"not comparable: evaluated on data {version.tags['eval_data_digest']}, champion version 1 on "
        f"{champion.tags['eval_data_digest']}")
    assert "not promoted: not comparable" in out
    assert champion_version(tracking) == "1"


def test_a_failure_while_tagging_deletes_the_new_version(tracking, champion_job, monkeypatch):
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from qa_common.tracking import models

    before = version_numbers(tracking)
    created = []
    register_model = mlflow.register_model

    def recording_register_model(*args, **kwargs):
        created.append(register_model(*args, **kwargs))
        return created[-1]

    def failing_tag(self, name, version, key, value):
        raise MlflowException(f"tag store unavailable while tagging {name}/{version} with {key}")

    model_uri = tracking.get_model_version(REGISTERED_MODEL, "1").source
    with monkeypatch.context() as patch:
        patch.setattr(mlflow, "register_model", recording_register_model)
        patch.setattr(MlflowClient, "set_model_version_tag", failing_tag)
        with pytest.raises(MlflowException, match="tag store unavailable"):
            models.register(model_uri, REGISTERED_MODEL, {"exact": 99.0, "eval_data_digest": "x"})

    assert len(created) == 1 and str(created[0].version) not in before  # a version was made, then removed
    with pytest.raises(MlflowException):
        tracking.get_model_version(REGISTERED_MODEL, created[0].version)
    assert version_numbers(tracking) == before
    assert champion_version(tracking) == "1"


# Bad input: every dataset is read and validated before a run exists, so nothing is left behind.


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(tmp_path))
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def assert_nothing_left(directory) -> None:
    assert experiment_runs(tracking_uri(directory), EXPERIMENT) == []
    assert not (directory / "mlruns").exists()
    assert not (directory / "out").exists()


def test_a_truncated_squad_file_fails_naming_the_file_and_leaves_no_run(empty_store, capsys):
    truncated = empty_store / "truncated.json"
    truncated.write_text(TRAIN_DATA.read_text()[:5000])
    code, out, err = train(capsys, "--train-data", str(truncated), "--eval-data", str(VALIDATION_DATA),
                           "--output-dir", str(empty_store / "out"))
    assert code == 2
    assert f"squad-qa train: error: {truncated}: malformed JSON at line 1, column " in err
    assert_nothing_left(empty_store)


def test_an_answer_missing_from_its_context_fails_naming_file_and_question(empty_store, capsys):
    document = json.loads(VALIDATION_DATA.read_text())
    article = document["data"][0]
    question = article["paragraphs"][0]["qas"][0]
    question["answers"] = [{"text": "a zebra crossing", "answer_start": question["answers"][0]["answer_start"]}]
    broken = empty_store / "broken-eval.json"
    broken.write_text(json.dumps(document))
    code, out, err = train(capsys, "--train-data", str(TRAIN_DATA), "--eval-data", str(broken),
                           "--output-dir", str(empty_store / "out"))
    assert code == 2
    assert f"{broken}, article {article['title']!r}, question {question['id']!r}: answer #0 'a zebra crossing'" in err
    assert "the text is not in the context" in err
    assert_nothing_left(empty_store)


def test_an_unknown_setting_exits_2_naming_it_and_leaves_no_run(tmp_path):
    process = squad_qa("train", "bert_qa", "--preset", "tiny", "--no-such-key", "1", "--output-dir",
                       str(tmp_path / "out"), cwd=tmp_path)
    assert process.returncode == 2, describe(process)
    assert "squad-qa train: error: unknown setting(s): no_such_key; job settings: train_data," in process.stderr
    assert "bert_qa settings: density, distill_alpha, distill_hidden, distill_temperature, doc_stride," \
        in process.stderr
    assert "Traceback" not in process.stderr
    assert_nothing_left(tmp_path)
