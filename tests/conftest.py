"""Shared fixtures of the end-to-end tests: one trained, registered tiny model (the champion) that the job,
registry and serving tests all look at. Helpers live in e2e.py, importable from every test module.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e import (  # noqa: E402
    ChampionJob,
    champion_settings,
    describe,
    experiment_runs,
    squad_qa,
    tracking_uri,
    write_slices,
)


@pytest.fixture(scope="session")
def champion_job(tmp_path_factory) -> ChampionJob:
    """`squad-qa train bert_qa --preset tiny` through the CLI with ONNX export, benchmark and registration."""
    workdir = tmp_path_factory.mktemp("champion")
    eval_data, calibration_data = write_slices(workdir)
    output_dir = workdir / "outputs" / "champion"
    process = squad_qa("train", "bert_qa", "--preset", "tiny", *champion_settings(eval_data, calibration_data),
                       "--output-dir", str(output_dir), cwd=workdir)
    assert process.returncode == 0, describe(process)
    uri = tracking_uri(workdir)
    runs = experiment_runs(uri)
    assert runs, describe(process)
    return ChampionJob(workdir=workdir, uri=uri, eval_data=eval_data, calibration_data=calibration_data,
                       output_dir=output_dir, process=process, run_id=runs[-1].info.run_id, runs_after_job=runs)


@pytest.fixture
def tracking(champion_job, monkeypatch):
    """An MlflowClient on the champion's store, with the in-process mlflow pointed at it too."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion_job.uri)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(champion_job.workdir)
    mlflow.set_tracking_uri(champion_job.uri)
    mlflow.set_registry_uri(champion_job.uri)
    return MlflowClient(tracking_uri=champion_job.uri, registry_uri=champion_job.uri)
