"""MLflow runs of the shared job: one experiment, shared param/metric names, resumable runs."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from transformers import TrainerCallback

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "squad-qa"


def configure_tracking() -> str:
    """Use MLFLOW_TRACKING_URI when set, else the embedded SQLite store in the working directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(uri)
    return uri


def run_status(run_id: str) -> str | None:
    """RUNNING, FINISHED, FAILED or KILLED; None when there is no such run."""
    try:
        return mlflow.get_run(run_id).info.status
    except mlflow.exceptions.MlflowException:
        return None


def use_experiment(experiment: str) -> None:
    """Make ``experiment`` active, unless this process runs inside ``mlflow run``'s own run (MLFLOW_RUN_ID):
    that run's experiment was chosen by ``mlflow run --experiment-name`` and MLflow refuses another."""
    project_run_id = os.environ.get("MLFLOW_RUN_ID")
    if not project_run_id:
        mlflow.set_experiment(experiment)
        return
    run = mlflow.get_run(project_run_id)
    mlflow.set_experiment(experiment_id=run.info.experiment_id)
    actual = mlflow.get_experiment(run.info.experiment_id).name
    if actual != experiment:
        print(f"note: mlflow run put this run in experiment {actual!r}, not {experiment!r}; "
              f"pass --experiment-name {experiment} to mlflow run", file=sys.stderr)


@contextmanager
def job_run(experiment: str, *, run_name: str | None, resume_run_id: str | None, tags: Mapping[str, str],
            system_metrics: bool = True) -> Iterator[str]:
    """Start (or resume, with ``resume_run_id``) the job's run; a failure marks the run FAILED."""
    configure_tracking()
    use_experiment(experiment)
    with mlflow.start_run(run_id=resume_run_id, run_name=None if resume_run_id else run_name,
                          log_system_metrics=system_metrics) as run:
        mlflow.set_tags(dict(tags))
        yield run.info.run_id


def log_params(params: Mapping[str, Any], *, resuming: bool) -> None:
    """Log params that the run does not have yet.

    When ``resuming`` a run this job started earlier, a param logged then with another value is an error
    (the run would mix two settings). Otherwise params already present were logged by ``mlflow run`` from
    the MLproject's parameters, in its own formatting, and are left as they are.
    """
    existing = mlflow.get_run(mlflow.active_run().info.run_id).data.params
    fresh = {key: str(value) for key, value in params.items() if key not in existing}
    changed = {key: (existing[key], str(value)) for key, value in params.items()
               if key in existing and existing[key] != str(value)[:6000]}
    if changed and resuming:
        raise ValueError(
            f"the run being resumed was started with other settings {changed}; "
            "pass --resume false or another --output-dir to start a new run"
        )
    if fresh:
        mlflow.log_params(fresh)


def log_metrics(metrics: Mapping[str, float], step: int | None = None) -> None:
    mlflow.log_metrics({key: float(value) for key, value in metrics.items()}, step=step)


def artifact_uri() -> str:
    """Where the active run's artifacts go."""
    return mlflow.get_artifact_uri()


def log_json(payload: Any, artifact_file: str) -> None:
    mlflow.log_dict(payload, artifact_file)


def log_dataset(frame: pd.DataFrame, *, source: str, name: str, context: str) -> str:
    """Log a dataset input of the run; returns its digest (what the promotion gate compares)."""
    dataset = mlflow.data.from_pandas(frame, source=source, name=name)
    mlflow.log_input(dataset, context=context)
    return dataset.digest


def set_tags(tags: Mapping[str, Any]) -> None:
    mlflow.set_tags({key: str(value) for key, value in tags.items()})


class MlflowStepLogger(TrainerCallback):
    """Logs the Trainer's per-step loss and learning rate (and a pruning schedule's density) to the active run
    (world process zero only)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        renamed = {"loss": "train_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm",
                   "pruning_density": "pruning_density"}
        metrics = {renamed[key]: value for key, value in logs.items()
                   if key in renamed and isinstance(value, (int, float))}
        if metrics:
            log_metrics(metrics, step=state.global_step)


def read_job_state(output_dir: Path) -> dict[str, Any]:
    path = Path(output_dir) / "job_state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def write_job_state(output_dir: Path, **state: Any) -> None:
    path = Path(output_dir) / "job_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state))
    temporary.replace(path)


def run_summaries(experiment: str, *, exclude_kind: str) -> list:
    """Finished runs of ``experiment`` as compare-job summaries (runs tagged ``squad_qa.kind=exclude_kind``
    left out), with their training-loss history."""
    from qa_common.jobs.compare import RunSummary

    configure_tracking()
    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise ValueError(f"no MLflow experiment named {experiment!r}")
    summaries = []
    for run in client.search_runs([found.experiment_id], filter_string="attributes.status = 'FINISHED'",
                                  max_results=5000):
        tags = run.data.tags
        if tags.get("squad_qa.kind") == exclude_kind:
            continue
        history = client.get_metric_history(run.info.run_id, "train_loss")
        summaries.append(RunSummary(
            run_id=run.info.run_id,
            name=run.info.run_name or run.info.run_id[:8],
            adapter=tags.get("adapter", ""),
            preset=tags.get("preset", ""),
            hardware=tags.get("hardware", ""),
            eval_data_digest=tags.get("eval_data_digest", ""),
            metrics=dict(run.data.metrics),
            train_loss=[(point.step, point.value) for point in sorted(history, key=lambda p: p.step)],
        ))
    return summaries


def log_compare_run(experiment: str, rows: list[dict[str, Any]], output_dir: Path, *, kind: str,
                    tags: Mapping[str, Any]) -> str:
    """A run holding the leaderboard as an MLflow table, its markdown and the plots."""
    configure_tracking()
    use_experiment(experiment)
    with mlflow.start_run(run_name="compare") as run:
        mlflow.set_tags({"squad_qa.kind": kind, **{key: str(value) for key, value in tags.items()}})
        mlflow.log_table(pd.DataFrame(rows), artifact_file="leaderboard.json")
        for path in sorted(Path(output_dir).iterdir()):
            if path.suffix in (".md", ".png"):
                mlflow.log_artifact(str(path))
        return run.info.run_id


def log_speed_run(experiment: str, result: Mapping[str, Any], report_dir: Path) -> str:
    """A run holding a side-by-side speed benchmark (`qa_common.jobs.speed`): ``<path>.<figure>`` metrics, the
    hardware, commit and command as tags, ``speed.json`` and ``speed.md`` as artifacts."""
    import re

    configure_tracking()
    use_experiment(experiment)
    with mlflow.start_run(run_name=f"speed {result['model']}"[:250]) as run:
        mlflow.set_tags({"squad_qa.kind": "speed", "hardware": str(result["hardware"]),
                         "commit": str(result["commit"]), "command": str(result["command"])[:5000]})
        mlflow.log_params({"model": str(result["model"])[:500], "data": str(result["data"])[:500],
                           "questions": result["questions"], "peak_tflops": result["peak_tflops"]})
        metrics = {}
        for path in result["paths"]:
            name = re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", path["name"])
            metrics.update({f"{name}.{key}": float(value) for key, value in path["figures"].items()})
        mlflow.log_metrics(metrics)
        for artifact in ("speed.json", "speed.md"):
            mlflow.log_artifact(str(Path(report_dir) / artifact))
        return run.info.run_id
