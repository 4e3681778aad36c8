"""The whole training job through the CLI (`squad-qa train bert_qa --preset tiny`): what it logs to MLflow,
what it registers, and that the tiny model actually learns the questions it trained on."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from e2e import OFFICIAL_EVAL, REGISTERED_MODEL, TRAIN_DATA, TRAIN_SLICE, describe, read_json, squad_qa

SCORE_KEYS = ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "HasAns_total", "NoAns_total")


@pytest.fixture(scope="module")
def slice_examples(champion_job):
    from qa_common.data.readers import load_squad

    return load_squad(champion_job.eval_data).examples


@pytest.fixture
def run(tracking, champion_job):
    return tracking.get_run(champion_job.run_id)


@pytest.fixture(scope="module")
def evaluation_artifacts(champion_job, tmp_path_factory):
    import mlflow

    destination = tmp_path_factory.mktemp("evaluation-artifacts")
    mlflow.set_tracking_uri(champion_job.uri)
    return destination / mlflow.artifacts.download_artifacts(
        run_id=champion_job.run_id, artifact_path="evaluation", dst_path=str(destination))


def test_the_job_exits_zero_and_leaves_one_finished_run(champion_job):
    runs = champion_job.runs_after_job
    assert [run.info.status for run in runs] == ["FINISHED"]
    assert runs[0].info.run_id == champion_job.run_id
    assert f"MLflow run {champion_job.run_id}" in champion_job.process.stdout
    assert "registered squad-qa version 1; promoted to champion: no champion yet" in champion_job.process.stdout
    assert read_json(champion_job.output_dir / "job_state.json") == {"status": "done", "run_id": champion_job.run_id}


def test_params_name_the_architecture_preset_and_settings(run, champion_job):
    params = run.data.params
    assert params["adapter"] == "bert_qa"
    assert params["preset"] == "tiny"
    assert float(params["learning_rate"]) == 3e-3
    assert float(params["epochs"]) == 15.0
    assert params["batch_size"] == "16"
    assert params["max_train_examples"] == str(TRAIN_SLICE)
    assert params["model.max_length"] == "128"
    assert params["model.hidden_size"] == "64"
    assert params["model.from_pretrained"] == "False"
    assert params["train_data"] == str(TRAIN_DATA)
    assert params["eval_data"] == str(champion_job.eval_data)
    assert params["calibration_source"] == str(champion_job.calibration_data)
    assert params["skipped_records"] == "0"
    assert run.data.tags["adapter"] == "bert_qa" and run.data.tags["preset"] == "tiny"


def test_metrics_cover_accuracy_threshold_speed_onnx_and_benchmark(run, slice_examples):
    metrics = run.data.metrics
    answerable = sum(1 for example in slice_examples if example.answers)
    assert metrics["eval_questions"] == len(slice_examples) == TRAIN_SLICE
    assert metrics["HasAns_total"] == answerable and metrics["NoAns_total"] == TRAIN_SLICE - answerable
    for key in ("exact", "f1", "HasAns_f1", "NoAns_exact", "best_exact", "answer_all_HasAns_f1"):
        assert 0.0 <= metrics[key] <= 100.0, key
    assert metrics["f1"] >= metrics["exact"]
    # best_exact is the official oracle threshold on the same predictions: no threshold does better.
    assert metrics["best_exact"] >= metrics["exact"]
    assert 0.0 < metrics["no_answer_threshold"] < 1.0

    steps_per_epoch = math.ceil(metrics["train_features"] / 16)
    assert metrics["train_features"] >= TRAIN_SLICE  # long contexts make several windows per question
    assert metrics["train_steps"] == 15 * steps_per_epoch
    assert metrics["train_features_per_s"] > 0 and metrics["train_runtime_s"] > 0
    assert metrics["parameters_total"] == metrics["parameters_trainable"] > 1_000_000

    assert metrics["onnx_max_abs_logit_diff"] < 1e-3
    assert metrics["onnx_size_bytes"] > 0 and metrics["model_size_bytes"] > metrics["onnx_size_bytes"]
    for runtime in ("torch", "onnx"):
        assert metrics[f"bench_{runtime}_questions"] == 20
        assert metrics[f"bench_{runtime}_questions_per_s"] > 0
        assert 0 < metrics[f"bench_{runtime}_latency_p50_ms"] <= metrics[f"bench_{runtime}_latency_p95_ms"]
        assert metrics[f"bench_{runtime}_model_sequences_per_s_b32"] > 0


def test_train_loss_is_logged_every_logging_step_and_falls(tracking, run):
    history = sorted(tracking.get_metric_history(run.info.run_id, "train_loss"), key=lambda metric: metric.step)
    steps = [metric.step for metric in history]
    total = int(run.data.metrics["train_steps"])
    assert steps == list(range(2, total + 1, 2))  # --logging-steps 2
    losses = [metric.value for metric in history]
    # A random 2-layer BERT starts near ln(128) per boundary (uniform over a 128-token window).
    assert 4.0 < losses[0] < 5.5
    thirds = [losses[: len(losses) // 3], losses[len(losses) // 3: 2 * len(losses) // 3], losses[2 * len(losses) // 3:]]
    means = [sum(part) / len(part) for part in thirds]
    assert means[0] > means[1] > means[2]
    assert max(losses[-5:]) < 0.3 * losses[0]


def test_the_tiny_model_learns_the_questions_it_trained_on(run, slice_examples):
    """The evaluation data is the training slice: the trained model answers it far better than the same model
    untrained (bert_qa builds the tiny preset from a fixed seed, so this is the job's starting point)."""
    from qa_common.adapter import get_adapter
    from qa_common.jobs.evaluate import evaluate

    adapter = get_adapter("bert_qa")
    untrained = evaluate(adapter.build(adapter.config("tiny")), slice_examples, 0.5)
    metrics = run.data.metrics
    assert untrained.answer_all_scores["HasAns_f1"] < 20.0
    assert metrics["answer_all_HasAns_f1"] > 60.0
    assert metrics["answer_all_HasAns_f1"] > untrained.answer_all_scores["HasAns_f1"] + 40.0
    # With the calibrated threshold it also beats answering "no answer" to everything.
    assert metrics["exact"] > metrics["NoAns_total"] / metrics["eval_questions"] * 100 + 10.0


def test_dataset_inputs_are_logged_for_training_calibration_and_evaluation(run):
    inputs = {}
    for dataset_input in run.inputs.dataset_inputs:
        contexts = [tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"]
        assert len(contexts) == 1
        inputs[contexts[0]] = dataset_input.dataset
    assert set(inputs) == {"training", "calibration", "evaluation"}
    rows = {context: json.loads(dataset.profile)["num_rows"] for context, dataset in inputs.items()}
    assert rows == {"training": TRAIN_SLICE, "calibration": 76, "evaluation": TRAIN_SLICE}
    assert inputs["evaluation"].digest == run.data.tags["eval_data_digest"]
    assert inputs["training"].digest != inputs["calibration"].digest


def test_evaluation_artifacts_are_what_the_official_scorer_computes(run, champion_job, evaluation_artifacts,
                                                                    slice_examples):
    predictions = read_json(evaluation_artifacts / "predictions.json")
    no_answer_probabilities = read_json(evaluation_artifacts / "na_probs.json")
    scores = read_json(evaluation_artifacts / "scores.json")
    ids = [example.id for example in slice_examples]
    assert list(predictions) == ids and list(no_answer_probabilities) == ids
    assert all(0.0 <= value <= 1.0 for value in no_answer_probabilities.values())
    assert sum(1 for text in predictions.values() if text) == len(ids)  # best non-empty span for every question
    for key in ("exact", "f1", "HasAns_f1", "NoAns_exact"):
        assert scores[key] == pytest.approx(run.data.metrics[key], abs=1e-9)

    threshold = repr(run.data.metrics["no_answer_threshold"])
    arguments = [str(champion_job.eval_data), str(evaluation_artifacts / "predictions.json"),
                 "--na-prob-file", str(evaluation_artifacts / "na_probs.json"), "--na-prob-thresh", threshold]
    scored = squad_qa("score", *arguments, cwd=evaluation_artifacts)
    assert scored.returncode == 0, describe(scored)
    assert json.loads(scored.stdout) == scores

    # The untouched official script agrees on the figures both print.
    official = subprocess.run([sys.executable, str(OFFICIAL_EVAL), *arguments], capture_output=True, text=True,
                              timeout=120)
    assert official.returncode == 0, describe(official)
    official_scores = json.loads(official.stdout)
    for key in SCORE_KEYS:
        assert scores[key] == pytest.approx(official_scores[key], abs=1e-9), key

    served = read_json(evaluation_artifacts / "served_predictions.json")
    assert served == {qid: "" if no_answer_probabilities[qid] > float(threshold) else text
                      for qid, text in predictions.items()}


def test_the_first_version_is_registered_and_promoted_to_champion(tracking, run):
    version = tracking.get_model_version(REGISTERED_MODEL, "1")
    assert version.run_id == run.info.run_id
    assert version.status == "READY"
    assert str(tracking.get_model_version_by_alias(REGISTERED_MODEL, "champion").version) == "1"
    assert float(version.tags["exact"]) == pytest.approx(run.data.metrics["exact"], abs=1e-9)
    assert float(version.tags["f1"]) == pytest.approx(run.data.metrics["f1"], abs=1e-9)
    assert version.tags["eval_data_digest"] == run.data.tags["eval_data_digest"]
    assert version.tags["runtimes"] == "torch,onnx"
    assert float(version.tags["no_answer_threshold"]) == run.data.metrics["no_answer_threshold"]
    assert version.tags["promotion_decision"] == "promoted"
    assert version.tags["promotion_reason"] == f"no champion yet; exact {run.data.metrics['exact']:.4f}"
    assert run.data.tags["registered_version"] == "1"
