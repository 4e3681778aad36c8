"""MLflow runs of studies: one parent run per study, one nested child run per (model, setting), so the UI compares
the children side by side; and reading a study's children back for its report."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow

from qa_common.tracking.runs import configure_tracking, use_experiment

PARENT_TAG = "mlflow.parentRunId"


@contextmanager
def study_run(experiment: str, *, run_name: str, tags: Mapping[str, Any]) -> Iterator[str]:
    """The parent run of a study (inside ``mlflow run``'s own run when there is one); a failure marks it FAILED."""
    import os

    configure_tracking()
    use_experiment(experiment)
    project_run = os.environ.get("MLFLOW_RUN_ID")
    with mlflow.start_run(run_id=project_run or None, run_name=None if project_run else run_name) as run:
        mlflow.set_tags({key: str(value) for key, value in tags.items()})
        yield run.info.run_id


@contextmanager
def child_run(*, run_name: str, tags: Mapping[str, Any]) -> Iterator[str]:
    """A run nested under the active run; a failure marks it (and, as the error goes on, its parent) FAILED.

    Created by id: inside ``mlflow run`` (MLFLOW_RUN_ID set), ``start_run(nested=True)`` without one would resume
    the project's run instead of starting a child."""
    parent = mlflow.active_run()
    created = mlflow.MlflowClient().create_run(
        parent.info.experiment_id, run_name=run_name,
        tags={PARENT_TAG: parent.info.run_id, **{key: str(value) for key, value in tags.items()}})
    with mlflow.start_run(run_id=created.info.run_id, nested=True) as run:
        yield run.info.run_id


def log_params(params: Mapping[str, Any]) -> None:
    mlflow.log_params({key: str(value)[:6000] for key, value in params.items()})


def log_metrics(metrics: Mapping[str, float]) -> None:
    mlflow.log_metrics({key: float(value) for key, value in metrics.items()})


def log_json(payload: Any, artifact_file: str) -> None:
    mlflow.log_dict(payload, artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_files(paths: list[Path], artifact_path: str | None = None) -> None:
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_to_run(run_id: str, *, metrics: Mapping[str, float] | None = None, files: list[Path] = (),
               tags: Mapping[str, Any] | None = None) -> None:
    """Add metrics, files and tags to an existing (possibly finished) run: a report written after the study."""
    client = mlflow.MlflowClient()
    for key, value in (metrics or {}).items():
        client.log_metric(run_id, key, float(value))
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, str(value))
    for path in files:
        client.log_artifact(run_id, str(path))


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    name: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def _record(run) -> RunRecord:
    return RunRecord(run_id=run.info.run_id, name=run.info.run_name or run.info.run_id[:8], status=run.info.status,
                     params=dict(run.data.params), metrics=dict(run.data.metrics), tags=dict(run.data.tags))


def get_run(run_id: str) -> RunRecord:
    configure_tracking()
    try:
        return _record(mlflow.get_run(run_id))
    except mlflow.exceptions.MlflowException as error:
        raise ValueError(f"no MLflow run {run_id!r} at {mlflow.get_tracking_uri()}") from error


def child_runs(parent_run_id: str) -> list[RunRecord]:
    """The finished runs nested under ``parent_run_id``, oldest first."""
    parent = get_run(parent_run_id)
    experiment_id = mlflow.get_run(parent_run_id).info.experiment_id
    found = mlflow.MlflowClient().search_runs(
        [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"], max_results=5000)
    return [_record(run) for run in found]


def latest_study(experiment: str, kind: str) -> str:
    """The id of the newest finished run of ``experiment`` tagged ``squad_qa.kind=kind``."""
    configure_tracking()
    found = mlflow.MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no MLflow experiment named {experiment!r}")
    runs = mlflow.MlflowClient().search_runs(
        [found.experiment_id], filter_string=f"tags.`squad_qa.kind` = '{kind}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        raise ValueError(f"experiment {experiment!r} has no finished run tagged squad_qa.kind={kind}")
    return runs[0].info.run_id
