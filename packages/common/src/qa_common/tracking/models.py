"""Logging models to runs and the registry: versions, aliases and the champion promotion gate.

Registration is all-or-nothing: a version whose tags cannot be written is deleted again, and ``champion``
moves only when the candidate beats the current champion's exact match on the same evaluation data.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from qa_common.serving import INPUT_FIELDS
from qa_common.tracking.faults import fault_point
from qa_common.tracking.pyfunc import SquadQAPythonModel

CHAMPION = "champion"
PREVIOUS = "previous-champion"
CHALLENGER = "challenger"
HISTORY_TAG = "champion_history"  # registered-model tag: the versions that were champion, oldest first
ARTIFACTS_TAG = "artifact_files"  # version tag: "N files, B bytes" of its logged model when it was registered
LATENCY_METRIC = "bench_torch_latency_p50_ms"
SIZE_METRIC = "model_size_bytes"
SIGNATURE = ModelSignature(
    # Typed Any, not string: for a string column the scoring server turns 5, true and null into "5", "True" and
    # "None" before the contract sees them; the contract checks the types itself and answers 400.
    inputs=Schema([ColSpec(AnyType(), field) for field in INPUT_FIELDS]),
    outputs=Schema([ColSpec("string", "answer"), ColSpec("double", "no_answer_probability"),
                    ColSpec("double", "score")]),
)
RUNTIME_EXCLUDES = {"torch": ("*.onnx", "*.onnx.data"), "onnx": ("*.safetensors", "*.bin")}
RUNTIME_REQUIREMENTS = ("torch", "transformers", "tokenizers", "safetensors", "numpy", "pandas", "onnxruntime")


def _pip_requirements(extra: Sequence[str]) -> list[str]:
    requirements = []
    for name in (*RUNTIME_REQUIREMENTS, *extra):
        try:
            release = version(name).split("+")[0]
            requirements.append(f"{name}=={release}")
        except PackageNotFoundError:
            requirements.append(name)
    requirements.append(f"mlflow=={mlflow.__version__}")  # also right where only mlflow-skinny is installed
    return requirements


def _code_paths(adapter_module: str) -> list[str]:
    """The source of qa_common and of the adapter's package travel with the model."""
    packages = {"qa_common", adapter_module.split(".")[0]}
    return [str(Path(importlib.import_module(name).__file__).parent) for name in sorted(packages)]


def log_qa_model(model_dir: Path, *, name: str, adapter_class: str, runtime: str = "torch",
                 input_example: list[dict[str, str]] | None = None,
                 extra_requirements: Sequence[str] = ()) -> str:
    """Log a saved squad-qa model directory as a pyfunc under the active run; returns the model URI.

    Only what ``runtime`` reads is logged: the PyTorch model leaves out the ONNX graph (``*.onnx*``), the ONNX
    model the PyTorch weights (``*.safetensors``), so neither carries the other's copy of the weights.
    """
    skipped = RUNTIME_EXCLUDES[runtime]
    with tempfile.TemporaryDirectory() as staging:
        staged = Path(staging) / "model"
        shutil.copytree(model_dir, staged, ignore=shutil.ignore_patterns(*skipped))
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=SquadQAPythonModel(runtime),
            artifacts={"model": str(staged)},
            signature=SIGNATURE,
            input_example=input_example,
            pip_requirements=_pip_requirements(extra_requirements),
            code_paths=_code_paths(adapter_class.partition(":")[0]),
        )
    return info.model_uri


@dataclass
class Registration:
    name: str
    version: str
    promoted: bool
    reason: str


def version_tags(metrics: Mapping[str, float], *, eval_data_digest: str, adapter: str, preset: str,
                 no_answer_threshold: float | str, runtimes: Sequence[str] = ()) -> dict[str, Any]:
    """The tags a registered version carries: the scores the gate compares, the data they were measured on,
    what the model is, its threshold and (when known) the runtimes it was logged for."""
    tags = {**{key: metrics[key] for key in ("exact", "f1", "HasAns_f1", "NoAns_exact") if key in metrics},
            "eval_data_digest": eval_data_digest, "adapter": adapter, "preset": preset,
            "no_answer_threshold": no_answer_threshold}
    if runtimes:
        tags["runtimes"] = ",".join(runtimes)
    return tags


class PromotionError(ValueError):
    """A promotion or rollback that cannot be made (unknown version, nothing to roll back to, a model
    whose artifacts are incomplete)."""


def _files(artifact_uri: str) -> dict[str, int]:
    """Every file under ``artifact_uri`` (any artifact store), with its size."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    repository = get_artifact_repository(artifact_uri)
    found, folders = {}, [None]
    while folders:
        for entry in repository.list_artifacts(folders.pop()):
            if entry.is_dir:
                folders.append(entry.path)
            else:
                found[entry.path] = entry.file_size or 0
    return found


def _describe_files(files: Mapping[str, int]) -> str:
    return f"{len(files)} files, {sum(files.values())} bytes"


def _logged_model_id(model_uri: str) -> str | None:
    """``m-...`` of a ``models:/m-...`` URI (where MLflow 3 keeps a logged model), else None."""
    if model_uri.startswith("models:/m-"):
        return model_uri.removeprefix("models:/").split("/")[0]
    return None


def _logged_model_problem(client: MlflowClient, model_id: str | None) -> str | None:
    """Why the logged model ``model_id`` is not complete (its logging was killed or failed), or None."""
    if not model_id:
        return None
    try:
        logged = client.get_logged_model(model_id)
    except MlflowException:
        return f"its logged model {model_id} does not exist"
    if logged.status != LoggedModelStatus.READY:
        return f"its logged model {model_id} is {logged.status.value}, not READY (its logging never finished)"
    return None


def _artifacts(client: MlflowClient, name: str, version) -> tuple[str | None, dict[str, int]]:
    """Why ``version`` (a ModelVersion) cannot be served from its artifacts (None when it can), and its files.

    Its logged model must have finished logging (READY: a job killed while logging leaves it PENDING, and
    ``runs:/<id>/model`` of such a run resolves to it), its artifacts must hold an ``MLmodel``, and, for a
    version registered with the ``artifact_files`` tag, still as many files and bytes as when it was registered.
    """
    problem = _logged_model_problem(client, _logged_model_id(version.source))
    if problem:
        return problem, {}
    uri = client.get_model_version_download_uri(name, version.version)
    try:
        files = _files(uri)
    except Exception as error:  # noqa: BLE001 - whatever the store says, the version cannot be served from it
        return f"its artifacts at {uri} cannot be listed: {error}", {}
    if "MLmodel" not in files:
        return f"its artifacts at {uri} are missing (no MLmodel)", files
    recorded = version.tags.get(ARTIFACTS_TAG)
    if recorded and recorded != _describe_files(files):
        return (f"its artifacts at {uri} changed since registration: {recorded} then, "
                f"{_describe_files(files)} now"), files
    return None, files


def artifacts_problem(name: str, version: str) -> str | None:
    """Why version ``version`` of ``name`` cannot be served from its artifacts, or None when it can."""
    client = MlflowClient()
    return _artifacts(client, name, client.get_model_version(name, version))[0]


def register(model_uri: str, name: str, tags: Mapping[str, Any]) -> str:
    """Create a registered version with ``tags``; on any failure after creation the version is removed.

    Only a completely logged model is registered (``runs:/<id>/model`` of a job killed while logging its
    model resolves to the half-logged one), and the version records how many files and bytes its artifacts
    hold (the ``artifact_files`` tag, written last: a version without it was never finished), so a version
    whose artifacts go missing later is recognised (``artifacts_problem``).
    """
    client = MlflowClient()
    problem = _logged_model_problem(client, _logged_model_id(model_uri))
    if problem:
        raise PromotionError(f"not registering {model_uri}: {problem}")
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="squad-qa models; champion is the one to serve")
    model_version = mlflow.register_model(model_uri, name, await_registration_for=300)
    try:
        fault_point("register:created")
        problem, files = _artifacts(client, name, client.get_model_version(name, model_version.version))
        if problem:
            raise PromotionError(f"not registering {model_uri}: {problem}")
        for key, value in {**tags, ARTIFACTS_TAG: _describe_files(files)}.items():
            client.set_model_version_tag(name, model_version.version, key, str(value))
        status = client.get_model_version(name, model_version.version).status
        if status != "READY":
            raise MlflowException(f"model version {name}/{model_version.version} is {status}, not READY")
    except BaseException:
        client.delete_model_version(name, model_version.version)
        raise
    return model_version.version


def finished_version_of_run(name: str, run_id: str) -> str | None:
    """The version of ``name`` that run ``run_id`` finished registering, if any, for a job resumed after a kill.

    Versions the run only began registering (created, then killed before the ``artifact_files`` tag was
    written) are deleted, unless an alias points at one; the job then registers anew.
    """
    client = MlflowClient()
    finished = []
    for model_version in client.search_model_versions(f"name='{name}' and run_id='{run_id}'"):
        if ARTIFACTS_TAG in model_version.tags:
            finished.append(int(model_version.version))
        elif not model_version.aliases:
            client.delete_model_version(name, model_version.version)
    return str(min(finished)) if finished else None


def champion_version(name: str):
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _history(client: MlflowClient, name: str) -> list[str]:
    """The champion history of ``name``; for a registry older than the history tag, rebuilt from the aliases."""
    tags = client.get_registered_model(name).tags
    if tags.get(HISTORY_TAG):
        return tags[HISTORY_TAG].split(",")
    history = []
    for alias in (PREVIOUS, CHAMPION):
        try:
            history.append(str(client.get_model_version_by_alias(name, alias).version))
        except MlflowException:
            pass
    return history


def _set_champion(client: MlflowClient, name: str, history: list[str]) -> None:
    """Point ``champion`` at the last version of ``history`` and ``previous-champion`` at the one before."""
    client.set_registered_model_tag(name, HISTORY_TAG, ",".join(history))
    client.set_registered_model_alias(name, CHAMPION, history[-1])
    fault_point("promote:aliases")
    if len(history) > 1:
        client.set_registered_model_alias(name, PREVIOUS, history[-2])
    else:
        try:
            client.delete_registered_model_alias(name, PREVIOUS)
        except MlflowException:
            pass


def _limit_failures(client: MlflowClient, run_id: str | None, max_latency_ms: float | None,
                    max_size_bytes: float | None) -> list[str]:
    """Why the candidate's run breaks the latency or size limit (empty when it does not)."""
    if max_latency_ms is None and max_size_bytes is None:
        return []
    metrics = client.get_run(run_id).data.metrics if run_id else {}
    failures = []
    for metric, limit, unit, scale in ((LATENCY_METRIC, max_latency_ms, "ms", 1.0),
                                       (SIZE_METRIC, max_size_bytes, "MB", 1e-6)):
        if limit is None:
            continue
        if metric not in metrics:
            failures.append(f"no {metric} measured for its run, limit {limit * scale:g} {unit}")
        elif metrics[metric] > limit:
            failures.append(f"{metric} {metrics[metric] * scale:.4g} {unit} > limit {limit * scale:g} {unit}")
    return failures


def promote_if_better(name: str, candidate_version: str, *, metric: str = "exact",
                      max_latency_ms: float | None = None, max_size_bytes: float | None = None) -> Registration:
    """The promotion gate: ``champion`` moves to the candidate only if it beats the champion's ``metric``
    measured on the same evaluation data (same ``eval_data_digest`` tag) and, where limits are given, its run's
    p50 latency (``bench_torch_latency_p50_ms``) and size on disk (``model_size_bytes``) are within them.

    The decision and its reason are written as version tags. A promoted candidate becomes ``champion`` and the
    replaced one ``previous-champion`` (the full order is kept in the registered model's ``champion_history``
    tag, for ``rollback``); a rejected one becomes ``challenger``, so it stays addressable. A version whose
    artifacts are incomplete or missing (``artifacts_problem``) gets no alias: PromotionError.
    """
    client = MlflowClient()
    try:
        candidate = client.get_model_version(name, candidate_version)
    except MlflowException as error:
        raise PromotionError(f"{name} has no version {candidate_version}") from error
    problem = _artifacts(client, name, candidate)[0]
    if problem:
        raise PromotionError(f"{name} version {candidate_version} cannot be served: {problem}")
    if metric not in candidate.tags:
        raise PromotionError(f"{name} version {candidate_version} has no {metric!r} tag to compare")
    candidate_score = float(candidate.tags[metric])
    champion = champion_version(name)
    if champion is not None and str(champion.version) == str(candidate_version):
        return Registration(name, candidate_version, False, f"version {candidate_version} is already the champion")
    failures = _limit_failures(client, candidate.run_id, max_latency_ms, max_size_bytes)
    if failures:
        promoted, reason = False, "over limits: " + "; ".join(failures)
    elif champion is None:
        promoted, reason = True, f"no champion yet; {metric} {candidate_score:.4f}"
    elif champion.tags.get("eval_data_digest") != candidate.tags.get("eval_data_digest"):
        promoted, reason = False, (
            f"not comparable: evaluated on data {candidate.tags.get('eval_data_digest')}, champion version "
            f"{champion.version} on {champion.tags.get('eval_data_digest')}"
        )
    else:
        champion_score = float(champion.tags[metric])
        promoted = candidate_score > champion_score
        relation = ">" if promoted else "<="
        reason = (f"{metric} {candidate_score:.4f} {relation} champion version {champion.version} "
                  f"{metric} {champion_score:.4f} on the same evaluation data")
    if promoted and (max_latency_ms is not None or max_size_bytes is not None):
        reason += "; within limits"
    client.set_model_version_tag(name, candidate_version, "promotion_decision",
                                 "promoted" if promoted else "rejected")
    client.set_model_version_tag(name, candidate_version, "promotion_reason", reason)
    if promoted:
        history = [version for version in _history(client, name) if version != str(candidate_version)]
        _set_champion(client, name, [*history, str(candidate_version)])
        try:
            if str(client.get_model_version_by_alias(name, CHALLENGER).version) == str(candidate_version):
                client.delete_registered_model_alias(name, CHALLENGER)
        except MlflowException:
            pass
    else:
        client.set_registered_model_alias(name, CHALLENGER, candidate_version)
    return Registration(name, candidate_version, promoted, reason)


def rollback(name: str) -> Registration:
    """Make the previous champion the champion again; the demoted version is tagged ``rolled back``.

    Repeated rollbacks walk further back through the champion history. Raises PromotionError when there is
    no earlier champion.
    """
    client = MlflowClient()
    try:
        history = _history(client, name)
    except MlflowException as error:
        raise PromotionError(f"no registered model {name!r}") from error
    if len(history) < 2:
        raise PromotionError(f"{name} has no previous champion to roll back to (champion history: "
                             f"{','.join(history) or 'empty'})")
    demoted, restored = history[-1], history[-2]
    problem = _artifacts(client, name, client.get_model_version(name, restored))[0]  # raises if it was deleted
    if problem:
        raise PromotionError(f"cannot roll back to {name} version {restored}: {problem}")
    _set_champion(client, name, history[:-1])
    reason = f"rolled back: champion returned from version {demoted} to version {restored}"
    client.set_model_version_tag(name, demoted, "promotion_decision", "rolled back")
    client.set_model_version_tag(name, demoted, "promotion_reason", reason)
    return Registration(name, restored, True, reason)


def register_run_model(run_id: str, name: str, *, artifact: str = "model") -> str:
    """The registered version of a run's logged model, registering it (with the job's version tags, read from
    the run) when the run has none yet.

    A version the run only began registering (killed before its tags were written) does not count; one
    registered before the ``artifact_files`` tag existed counts when it carries the scores."""
    client = MlflowClient()
    existing = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    usable = ([version for version in existing if ARTIFACTS_TAG in version.tags]
              or [version for version in existing if "exact" in version.tags])
    if usable:
        return str(min(int(version.version) for version in usable))
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise PromotionError(f"no run {run_id}") from error
    metrics, tags = run.data.metrics, run.data.tags
    if "exact" not in metrics or "eval_data_digest" not in tags:
        raise PromotionError(f"run {run_id} is not a squad-qa training run (no exact metric or evaluation digest)")
    return register(f"runs:/{run_id}/{artifact}", name, version_tags(
        metrics, eval_data_digest=tags["eval_data_digest"], adapter=tags.get("adapter", ""),
        preset=tags.get("preset", ""), no_answer_threshold=metrics.get("no_answer_threshold", "")))


def resolve_model_directory(model: str) -> tuple[Path, str | None]:
    """A saved model directory for ``model``: a local squad-qa model directory, or an MLflow model URI
    (``runs:/<id>/model``, ``models:/<name>@champion``) downloaded from the tracking server.

    Returns the directory and the run id the model was logged in (None for a local directory).
    """
    local = Path(model)
    if local.is_dir():
        return local, None
    if "://" not in model and not model.startswith(("runs:/", "models:/")):
        raise FileNotFoundError(f"model {model!r}: no such model directory, and not an MLflow model URI "
                                "(runs:/<run id>/model, models:/<name>@<alias>)")
    from mlflow.exceptions import MlflowException
    from mlflow.models import get_model_info

    try:
        info = get_model_info(model)
        root = Path(mlflow.artifacts.download_artifacts(artifact_uri=model))
    except MlflowException as error:
        raise ValueError(f"model {model!r} cannot be loaded from the tracking server at "
                         f"{mlflow.get_tracking_uri()}: {error.message}") from error
    return root / "artifacts" / "model", info.run_id


def log_metrics_to_run(run_id: str, metrics: Mapping[str, float]) -> None:
    """Add metrics to an existing (possibly finished) run, e.g. a later benchmark of its model."""
    client = MlflowClient()
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
