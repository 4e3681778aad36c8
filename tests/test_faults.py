"""Faults, with nothing lost: real SIGKILLs of the training job, a full disk, an unwritable artifact store.

The kills go through the same driver as `make reliability` (scripts/reliability_faults.py) on a small budget:
two kills at seeded random points of training, one while the model is being logged, one right after its
registered version was created. The killed job resumes into the same MLflow run and ends with the metrics,
weights and per-step losses of an uninterrupted run with the same seed; the registry keeps no half-made
version and the champion still answers.
"""

from __future__ import annotations

import importlib.util
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from e2e import REGISTERED_MODEL, REPO, TRAIN_DATA, VALIDATION_DATA, experiment_runs, job_environment, tracking_uri

# Seed 15 (the default of `make reliability`, which goes on to three more) puts both random kills in training
# between checkpoints (every 7 steps): just after step 2, before any checkpoint (the next attempt trains from
# step 0 again inside the same run), and at step 31 (the next attempt resumes from checkpoint-28 and trains
# steps 29-31 a second time).
SEED = 15
KILLS = 2
# Resume on a CPU reproduces the uninterrupted run bit for bit (RNG states, data order and optimizer state all
# come back from the checkpoint); the tolerance only allows for float noise on other machines.
TOLERANCE = 1e-6


def load_driver():
    spec = importlib.util.spec_from_file_location("reliability_faults", REPO / "scripts" / "reliability_faults.py")
    driver = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = driver  # dataclasses look their module up
    spec.loader.exec_module(driver)
    return driver


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    driver = load_driver()
    workdir = tmp_path_factory.mktemp("faults")
    report = driver.run_faults(workdir, kills=KILLS, seed=SEED)
    driver.check_tolerance(report, TOLERANCE)
    print(driver.figures(report, TOLERANCE))
    return driver, report, workdir


def test_a_job_killed_four_times_resumes_into_one_run_with_the_uninterrupted_metrics(faults):
    _, report, workdir = faults
    assert report.problems == []
    assert [attempt.returncode for attempt in report.attempts] == [-signal.SIGKILL] * 4 + [0]
    training_kills = [attempt for attempt in report.kills if attempt.fault.startswith("step:")]
    assert len(training_kills) == KILLS
    kill_steps = [int(attempt.fault.split(":")[1].split("+")[0]) for attempt in training_kills]
    assert kill_steps == [2, 31]  # between checkpoints, not on one
    # Each later attempt went on in the same run, from the last complete checkpoint before the kill.
    assert all(attempt.resumed_run for attempt in report.attempts[1:])
    assert [attempt.resumed_from for attempt in report.attempts[1:3]] == [
        None, str(workdir / "killed" / "checkpoints" / "checkpoint-28")]
    assert report.attempts[-1].resumed_from.endswith(f"checkpoint-{report.total_steps}")
    assert len(set(report.run_ids)) == 1 and report.reference_run_id not in report.run_ids
    assert report.left_behind == {}  # no run of a killed attempt left RUNNING beside it
    assert report.run_status == "FINISHED"

    for key in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_exact", "best_f1",
                "answer_all_f1", "no_answer_threshold", "calibration_f1", "train_steps", "eval_questions"):
        uninterrupted, resumed_value = report.compared[key]
        assert resumed_value == pytest.approx(uninterrupted, abs=TOLERANCE), key
    assert report.compared["HasAns_exact"][0] > 50  # the model answers: the metrics depend on its weights
    # Every loss logged, the re-run steps' twice, is the uninterrupted run's loss at that step.
    assert report.loss_steps == report.total_steps < report.loss_values and report.loss_max_abs_diff <= TOLERANCE
    assert report.weights_max_abs_diff <= TOLERANCE and report.na_prob_max_abs_diff <= TOLERANCE


def test_kills_while_logging_and_registering_leave_no_dangling_version_and_the_champion_answers(faults):
    _, report, workdir = faults
    log_kill, register_kill = report.kills[-2:]
    assert log_kill.fault.startswith("log_model+") and register_kill.fault == "register:created"
    # While the model was half-logged, registering the run's model was refused, naming why.
    assert report.promote_half_logged.startswith("exit 2: squad-qa promote: error: not registering runs:/")
    assert "is PENDING, not READY (its logging never finished)" in report.promote_half_logged

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(workdir), registry_uri=tracking_uri(workdir))
    versions = {version.version: version for version in client.search_model_versions(f"name='{REGISTERED_MODEL}'")}
    # The reference's version and one of the killed run: the half-made versions were deleted again.
    assert sorted(version.run_id for version in versions.values()) == sorted(
        [report.reference_run_id, report.run_ids[0]])
    assert all(state.startswith(("(reference run) complete, loads, answers", "(killed run) complete, loads, answers"))
               for state in report.versions.values())
    assert report.champion_before == report.champion_after == "1"
    assert report.champion_answer  # the champion answers the question it learned


def test_promote_refuses_a_version_whose_artifacts_went_missing(faults, monkeypatch, capsys):
    _, report, workdir = faults
    import mlflow
    from mlflow import MlflowClient

    from qa_common.cli import main

    uri = tracking_uri(workdir)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.setattr(mlflow.tracking._model_registry.utils, "_registry_uri", uri)
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    [version] = client.search_model_versions(f"name='{REGISTERED_MODEL}' and run_id='{report.run_ids[0]}'")
    location = client.get_model_version_download_uri(REGISTERED_MODEL, version.version)
    [weights] = Path(location.removeprefix("file://")).rglob("model.safetensors")
    weights.unlink()

    assert main(["promote", "--version", str(version.version)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"squad-qa promote: error: squad-qa version {version.version} cannot be served: its "
                            f"artifacts at {location} changed since registration: {version.tags['artifact_files']} "
                            "then, ")
    assert error.count("\n") == 1
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, "champion").version) == "1"
    assert client.get_model_version(REGISTERED_MODEL, version.version).tags == version.tags  # no decision made


# A full disk and an unwritable artifact store: a one-line error naming where, exit 1, the run FAILED, no version.

FAULT_JOB = ["--train-data", str(TRAIN_DATA), "--max-train-examples", "40", "--epochs", "1", "--save-steps", "1",
             "--eval-data", str(VALIDATION_DATA), "--max-eval-examples", "10", "--export-onnx", "false",
             "--benchmark", "false", "--system-metrics", "false"]
FULL_DISK_BYTES = 4_000_000  # room for the MLflow store, not for the tiny model's 8 MB weights


def file_size_limit():
    """In the child: files stop growing at FULL_DISK_BYTES, and a write past it fails with EFBIG."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FULL_DISK_BYTES, FULL_DISK_BYTES))


@pytest.mark.parametrize("fault", ["full disk", "unwritable artifact store"])
def test_a_failed_write_is_one_clear_line_and_leaves_no_finished_run_or_version(tmp_path, fault):
    output_dir = tmp_path / "out"
    if fault == "unwritable artifact store":
        (tmp_path / "mlruns").write_text("a regular file where the artifact store's directory should be")
    process = subprocess.run(
        [sys.executable, "-m", "qa_common.cli", "train", "bert_qa", "--preset", "tiny", *FAULT_JOB,
         "--output-dir", str(output_dir)],
        cwd=tmp_path, env=job_environment(tmp_path), capture_output=True, text=True, timeout=600,
        preexec_fn=file_size_limit if fault == "full disk" else None)

    assert process.returncode == 1, process.stderr[-3000:]
    assert "Traceback" not in process.stderr
    [error] = [line for line in process.stderr.splitlines() if "squad-qa train: error:" in line]
    if fault == "full disk":
        assert error.endswith(f"squad-qa train: error: cannot write checkpoints to {output_dir / 'checkpoints'}: "
                              "SafetensorError: Error while serializing: I/O error: File too large (os error 27)")
    else:
        [run] = experiment_runs(tracking_uri(tmp_path))
        assert error == (f"squad-qa train: error: cannot write to the artifact store {tmp_path}/mlruns/"
                         f"{run.info.experiment_id}/{run.info.run_id}/artifacts: NotADirectoryError: [Errno 20] "
                         f"Not a directory: '{tmp_path}/mlruns/{run.info.experiment_id}'")
    assert [run.info.status for run in experiment_runs(tracking_uri(tmp_path))] == ["FAILED"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri(tmp_path), registry_uri=tracking_uri(tmp_path))
    assert client.search_model_versions(f"name='{REGISTERED_MODEL}'") == []
