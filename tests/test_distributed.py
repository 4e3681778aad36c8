"""The shared job on two processes (torchrun, gloo on the CPU): one MLflow run, checkpoints written once, the same
numbers as one process trained on the same micro-batches, and a job killed on two processes resumes on one.

What "the same numbers" can mean: both processes draw their batches from one seeded permutation (accelerate shards
the single-process batch sampler: process r takes batches r, r + 2, ...), so a step of 2 processes x 4 features sees
the features of a step of 1 process x 8. But each process pads its share to its own longest window, and the QA
loss's softmax spans the pad positions, so 2 x 4 equals 1 process with batch 4 and 2 accumulation steps (the same
micro-batches, the same padding), not batch 8 (on this slice: 4.5e-3 apart at step 1, 0.30 at step 3). Dropout would
draw other masks per process, so the model is a dropout-free copy of the tiny preset's encoder.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2e import TRAIN_DATA, VALIDATION_DATA, describe, experiment_runs, job_environment, read_json, tracking_uri

# 29 questions of the sample (3 articles held out for calibration) make 48 windows: 6 whole steps of 8 an epoch, so
# no step has a short or a wrapped-around batch (accelerate pads the last batch of a process with features from the
# start of the epoch).
TRAIN_QUESTIONS, TRAIN_WINDOWS, GLOBAL_BATCH, EPOCHS, SAVE_STEPS = 29, 48, 8, 2, 4
TOTAL_STEPS = TRAIN_WINDOWS // GLOBAL_BATCH * EPOCHS
# Observed differences between 2 x 4 and 1 x 4 x 2 accumulation: 2.4e-7 in the loss (about 4), 4.8e-7 in the
# gradient norm, 6.5e-9 in the no-answer probabilities: float32 sums in another order (per process, then the gloo
# all-reduce). The tolerances are over 100x that and far below what a real difference makes: the padding of
# 1 x 8 (4.5e-3 in the step-1 loss), a step on other features (0.1 and more), gradients summed instead of averaged
# (grad norm x 2).
RELATIVE_TOLERANCE = 1e-5
PROBABILITY_TOLERANCE = 1e-5
CHECKPOINT_FILES = {"config.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json",
                    "training_args.bin"}


@pytest.fixture(scope="module")
def dropout_free_tiny(tmp_path_factory) -> Path:
    """The tiny preset's encoder (2 layers, 64 wide, random, bert-base-uncased vocabulary) without dropout, saved as
    a checkpoint directory the job fine-tunes like any pretrained one (``--from-pretrained true --model-name``)."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, BertConfig

    from bert_qa.model import resolve_model_name

    directory = tmp_path_factory.mktemp("dropout-free-tiny")
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("minilm-l6"), use_fast=True)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=512, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    AutoModelForQuestionAnswering.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def job_command(model: Path, output_dir: Path, *settings: str) -> list[str]:
    return [sys.executable, "-m", "qa_common.cli", "train", "bert_qa", "--preset", "tiny", "--from-pretrained", "true",
            "--model-name", str(model), "--train-data", str(TRAIN_DATA), "--max-train-examples", str(TRAIN_QUESTIONS),
            "--eval-data", str(VALIDATION_DATA), "--max-eval-examples", "20", "--epochs", str(EPOCHS),
            "--learning-rate", "3e-3", "--logging-steps", "1", "--save-steps", str(SAVE_STEPS),
            "--register", "false", "--export-onnx", "false", "--benchmark", "false", "--system-metrics", "false",
            "--output-dir", str(output_dir), *settings]


def run(command: list[str], workdir: Path, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=workdir, env={**job_environment(workdir), **environment}, capture_output=True,
                          text=True, timeout=400)


def histories(uri: str, run_id: str) -> dict[str, dict[int, float]]:
    """Per-step train_loss, grad_norm and learning_rate; a step logged twice (before a kill and after the resume)
    keeps its latest value."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    return {key: {metric.step: metric.value for metric in sorted(client.get_metric_history(run_id, key),
                                                                key=lambda metric: metric.timestamp)}
            for key in ("train_loss", "grad_norm", "learning_rate")}


def no_answer_probabilities(uri: str, run_id: str) -> dict[str, float]:
    import mlflow

    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="evaluation/na_probs.json",
                                               tracking_uri=uri)
    return json.loads(Path(path).read_text())


def assert_checkpoints_written_once(checkpoints: Path, steps: list[int], rng_files: set[str]) -> None:
    """The kept checkpoints, each whole, each saved once: one copy of the weights, optimizer and trainer state (the
    main process's), an RNG state per process, and nothing half-written beside them."""
    assert {path.name for path in checkpoints.iterdir()} == {f"checkpoint-{step}" for step in steps}
    for step in steps:
        checkpoint = checkpoints / f"checkpoint-{step}"
        assert {path.name for path in checkpoint.iterdir()} == CHECKPOINT_FILES | rng_files
        assert read_json(checkpoint / "trainer_state.json")["global_step"] == step


@pytest.fixture(scope="module")
def two_process_job(dropout_free_tiny, tmp_path_factory):
    """``squad-qa train ... --processes 2``: torchrun starts two processes on this host (gloo: no GPU here)."""
    workdir = tmp_path_factory.mktemp("two-processes")
    process = run(job_command(dropout_free_tiny, workdir / "out", "--batch-size", str(GLOBAL_BATCH),
                              "--processes", "2"), workdir)
    assert process.returncode == 0, describe(process)  # torchrun exits 0 only when both processes did
    return workdir, process


def test_two_processes_log_one_run_and_train_like_one_process_on_the_same_micro_batches(
        dropout_free_tiny, two_process_job, tmp_path):
    workdir, process = two_process_job
    uri = tracking_uri(workdir)
    [run_two] = experiment_runs(uri)  # the second process created no run
    assert run_two.info.status == "FINISHED"
    assert run_two.data.tags["processes"] == "2" and run_two.data.params["batch_size"] == str(GLOBAL_BATCH)
    assert process.stdout.count("MLflow run ") == 1  # only the main process evaluated and reported
    assert read_json(workdir / "out" / "job_state.json") == {"status": "done", "run_id": run_two.info.run_id}
    assert_checkpoints_written_once(workdir / "out" / "checkpoints", [TOTAL_STEPS - SAVE_STEPS, TOTAL_STEPS],
                                    {"rng_state_0.pth", "rng_state_1.pth"})
    assert (workdir / "out" / "model" / "model.safetensors").is_file()

    # One process on the same micro-batches: batch 4, gradients accumulated over 2 of them.
    reference = run(job_command(dropout_free_tiny, tmp_path / "out", "--batch-size", str(GLOBAL_BATCH // 2),
                                "--gradient-accumulation-steps", "2"), tmp_path)
    assert reference.returncode == 0, describe(reference)
    [run_one] = experiment_runs(tracking_uri(tmp_path))
    one, two = run_one.data.metrics, run_two.data.metrics
    assert one["train_features"] == two["train_features"] == TRAIN_WINDOWS
    assert one["train_steps"] == two["train_steps"] == TOTAL_STEPS

    history_one = histories(tracking_uri(tmp_path), run_one.info.run_id)
    history_two = histories(uri, run_two.info.run_id)
    for key in ("train_loss", "grad_norm", "learning_rate"):
        assert sorted(history_two[key]) == list(range(1, TOTAL_STEPS + 1))
        assert history_two[key] == pytest.approx(history_one[key], rel=RELATIVE_TOLERANCE), key
    assert history_two["train_loss"][TOTAL_STEPS] < 0.8 * history_two["train_loss"][1]  # it learns
    assert two["train_loss_mean"] == pytest.approx(one["train_loss_mean"], rel=RELATIVE_TOLERANCE)
    for key in ("exact", "f1", "HasAns_f1", "NoAns_exact", "answer_all_f1", "calibration_exact",
                "no_answer_threshold"):
        assert two[key] == pytest.approx(one[key], rel=RELATIVE_TOLERANCE, abs=1e-9), key
    probabilities_one = no_answer_probabilities(tracking_uri(tmp_path), run_one.info.run_id)
    probabilities_two = no_answer_probabilities(uri, run_two.info.run_id)
    assert probabilities_two.keys() == probabilities_one.keys()
    assert max(abs(probabilities_two[key] - probabilities_one[key]) for key in probabilities_one) \
        < PROBABILITY_TOLERANCE


def test_a_job_killed_on_two_processes_resumes_on_one_into_the_same_run(dropout_free_tiny, two_process_job, tmp_path):
    """Started the way ``mlflow run`` starts it (its run named by MLFLOW_RUN_ID), killed after step 6 on two
    processes, resumed on one with the same settings (the batch is per step, whatever the number of processes)."""
    from mlflow import MlflowClient

    uri = tracking_uri(tmp_path)
    client = MlflowClient(tracking_uri=uri)
    project_run = client.create_run(client.create_experiment("squad-qa")).info.run_id
    output_dir = tmp_path / "out"
    command = job_command(dropout_free_tiny, output_dir, "--batch-size", str(GLOBAL_BATCH))
    killed = run([*command, "--processes", "2"], tmp_path, MLFLOW_RUN_ID=project_run, SQUAD_QA_FAULT="step:6")
    assert killed.returncode != 0 and "fault injected: SIGKILL at step:6" in killed.stderr, describe(killed)
    [killed_run] = experiment_runs(uri)
    assert killed_run.info.run_id == project_run and killed_run.info.status == "RUNNING"
    assert_checkpoints_written_once(output_dir / "checkpoints", [SAVE_STEPS], {"rng_state_0.pth", "rng_state_1.pth"})

    resumed = run(command, tmp_path)
    assert resumed.returncode == 0, describe(resumed)
    assert f"resuming MLflow run {project_run}" in resumed.stderr
    assert f"resuming from {output_dir / 'checkpoints' / f'checkpoint-{SAVE_STEPS}'}\n" in resumed.stderr
    [finished] = experiment_runs(uri)
    assert finished.info.run_id == project_run and finished.info.status == "FINISHED"
    assert finished.data.tags["processes"] == "1"  # the attempt that finished it
    assert finished.data.metrics["train_steps"] == TOTAL_STEPS
    final_state = read_json(output_dir / "checkpoints" / f"checkpoint-{TOTAL_STEPS}" / "trainer_state.json")
    assert final_state["global_step"] == TOTAL_STEPS and final_state["epoch"] == EPOCHS
    assert {path.name for path in (output_dir / "checkpoints" / f"checkpoint-{TOTAL_STEPS}").iterdir()} \
        == CHECKPOINT_FILES | {"rng_state.pth"}

    history = histories(uri, project_run)
    workdir_two, _ = two_process_job
    [run_two] = experiment_runs(tracking_uri(workdir_two))
    uninterrupted = histories(tracking_uri(workdir_two), run_two.info.run_id)
    assert sorted(history["train_loss"]) == list(range(1, TOTAL_STEPS + 1))
    # The schedule went on from the checkpoint's step, not from 0, on one process as on two.
    assert history["learning_rate"] == pytest.approx(uninterrupted["learning_rate"], rel=RELATIVE_TOLERANCE)
    # Steps up to the checkpoint ran on two processes, as in the uninterrupted run; the later ones on one process
    # pad each batch of 8 as a whole, so they differ from it as batch 8 differs from 2 x 4 (see the module doc).
    for step in range(1, SAVE_STEPS + 1):
        assert history["train_loss"][step] == pytest.approx(uninterrupted["train_loss"][step], rel=RELATIVE_TOLERANCE)
    assert history["train_loss"][TOTAL_STEPS] < 0.8 * history["train_loss"][1]
