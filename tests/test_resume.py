"""A training job killed mid-training resumes into the same MLflow run; once done, the same command starts anew."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time

import pytest
from e2e import TRAIN_DATA, VALIDATION_DATA, describe, experiment_runs, job_environment, read_json, tracking_uri

CHECKPOINT_TIMEOUT_S = 240
SAVE_STEPS = 5


def newest_complete_checkpoint_step(checkpoints) -> int | None:
    steps = [int(path.name.rpartition("-")[2]) for path in checkpoints.glob("checkpoint-*")
             if (path / "trainer_state.json").is_file()]
    return max(steps, default=None)


def assert_training_figures(metrics: dict[str, float], loss_history, *, resumed_step: int) -> None:
    """train_loss_mean is the mean step loss and train_features_per_s the features per second of the attempt
    that trained from ``resumed_step`` to the end (the whole run when it was not resumed)."""
    total_steps = int(metrics["train_steps"])
    latest = {metric.step: metric.value for metric in sorted(loss_history, key=lambda metric: metric.timestamp)}
    attempt_losses = [latest[step] for step in range(resumed_step + 1, total_steps + 1)]
    assert metrics["train_loss_mean"] == pytest.approx(sum(attempt_losses) / len(attempt_losses), abs=1e-3)
    features_trained = metrics["train_features"] * 3 * (total_steps - resumed_step) / total_steps
    assert metrics["train_features_per_s"] * metrics["train_runtime_s"] == pytest.approx(features_trained, rel=0.01)


def test_a_killed_job_resumes_into_the_same_run_and_a_finished_one_starts_a_new_run(tmp_path):
    output_dir = tmp_path / "out"
    checkpoints = output_dir / "checkpoints"
    command = [sys.executable, "-m", "qa_common.cli", "train", "bert_qa", "--preset", "tiny",
               "--save-steps", str(SAVE_STEPS), "--epochs", "3", "--output-dir", str(output_dir),
               "--register", "false", "--export-onnx", "false", "--benchmark", "false",
               "--train-data", str(TRAIN_DATA), "--max-train-examples", "100", "--logging-steps", "1",
               "--eval-data", str(VALIDATION_DATA), "--max-eval-examples", "20"]
    uri = tracking_uri(tmp_path)

    def run_to_the_end() -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=tmp_path, env=job_environment(tmp_path), capture_output=True, text=True,
                              timeout=600)

    # 1. Start the job and SIGKILL it as soon as it has written a whole checkpoint.
    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(command, cwd=tmp_path, env=job_environment(tmp_path), stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + CHECKPOINT_TIMEOUT_S
        while newest_complete_checkpoint_step(checkpoints) is None:
            assert process.poll() is None, (tmp_path / "killed.log").read_text()[-4000:]
            assert time.monotonic() < deadline, f"no checkpoint within {CHECKPOINT_TIMEOUT_S} s"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        log.close()
    assert process.returncode == -signal.SIGKILL

    [killed_run] = experiment_runs(uri)
    run_id = killed_run.info.run_id
    assert killed_run.info.status == "RUNNING"
    assert read_json(output_dir / "job_state.json") == {"status": "training", "run_id": run_id}
    resume_step = newest_complete_checkpoint_step(checkpoints)

    # A kill can also land while the Trainer writes the next checkpoint: weights there, trainer state not yet.
    # The job must resume from the last whole checkpoint, not from that one.
    partial = checkpoints / f"checkpoint-{resume_step + SAVE_STEPS}"
    partial.mkdir(exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(checkpoints / f"checkpoint-{resume_step}" / name, partial / name)
    # Or while it writes that last file, trainer_state.json, leaving it cut short.
    cut_short = checkpoints / f"checkpoint-{resume_step + 2 * SAVE_STEPS}"
    shutil.copytree(checkpoints / f"checkpoint-{resume_step}", cut_short, dirs_exist_ok=True)
    (cut_short / "trainer_state.json").write_text((cut_short / "trainer_state.json").read_text()[:40])

    # 2. The same command again: it resumes the run and finishes it.
    resumed = run_to_the_end()
    assert resumed.returncode == 0, describe(resumed)
    assert f"resuming MLflow run {run_id}" in resumed.stderr
    assert f"resuming from {checkpoints / f'checkpoint-{resume_step}'}\n" in resumed.stderr
    assert f"MLflow run {run_id};" in resumed.stdout

    [finished_run] = experiment_runs(uri)
    assert finished_run.info.run_id == run_id
    assert finished_run.info.status == "FINISHED"
    assert read_json(output_dir / "job_state.json") == {"status": "done", "run_id": run_id}

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    total_steps = int(finished_run.data.metrics["train_steps"])
    final_state = read_json(checkpoints / f"checkpoint-{total_steps}" / "trainer_state.json")
    assert final_state["global_step"] == total_steps and final_state["epoch"] == 3.0
    assert total_steps > resume_step + SAVE_STEPS  # the resumed attempt trained past the partial checkpoint
    history = client.get_metric_history(run_id, "train_loss")
    steps = {metric.step for metric in history}
    assert max(steps) == total_steps
    assert steps == set(range(1, total_steps + 1))  # every step logged, before the kill or after the resume
    assert finished_run.data.metrics["eval_questions"] == 20
    # The training figures of a resumed run describe the attempt that finished it, not a mix of both attempts.
    assert_training_figures(finished_run.data.metrics, history, resumed_step=resume_step)

    # 3. Once more: the job is done, so this is a new run (no resume), and both runs are kept.
    again = run_to_the_end()
    assert again.returncode == 0, describe(again)
    assert "resuming" not in again.stderr
    runs = experiment_runs(uri)
    assert len(runs) == 2
    assert runs[0].info.run_id == run_id
    new_run = runs[1]
    assert new_run.info.run_id != run_id
    assert [run.info.status for run in runs] == ["FINISHED", "FINISHED"]
    assert f"MLflow run {new_run.info.run_id};" in again.stdout
    assert read_json(output_dir / "job_state.json") == {"status": "done", "run_id": new_run.info.run_id}
    new_history = client.get_metric_history(new_run.info.run_id, "train_loss")
    assert {metric.step for metric in new_history} == set(range(1, total_steps + 1))
    assert_training_figures(new_run.data.metrics, new_history, resumed_step=0)
