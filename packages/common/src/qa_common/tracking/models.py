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
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType

from qa_common.serving import INPUT_FIELDS
from qa_common.tracking.pyfunc import SquadQAPythonModel

CHAMPION = "champion"
PREVIOUS = "previous-champion"
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


def register(model_uri: str, name: str, tags: Mapping[str, Any]) -> str:
    """Create a registered version with ``tags``; on any failure after creation the version is removed."""
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description="squad-qa models; champion is the one to serve")
    model_version = mlflow.register_model(model_uri, name, await_registration_for=300)
    try:
        for key, value in tags.items():
            client.set_model_version_tag(name, model_version.version, key, str(value))
        status = client.get_model_version(name, model_version.version).status
        if status != "READY":
            raise MlflowException(f"model version {name}/{model_version.version} is {status}, not READY")
    except BaseException:
        client.delete_model_version(name, model_version.version)
        raise
    return model_version.version


def champion_version(name: str):
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote_if_better(name: str, candidate_version: str, *, metric: str = "exact") -> Registration:
    """The promotion gate: ``champion`` moves to the candidate only if it beats the champion's ``metric``
    measured on the same evaluation data (same ``eval_data_digest`` tag). The decision is written as tags.
    """
    client = MlflowClient()
    candidate = client.get_model_version(name, candidate_version)
    candidate_score = float(candidate.tags[metric])
    champion = champion_version(name)
    if champion is None:
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
    client.set_model_version_tag(name, candidate_version, "promotion_decision",
                                 "promoted" if promoted else "rejected")
    client.set_model_version_tag(name, candidate_version, "promotion_reason", reason)
    if promoted:
        if champion is not None:
            client.set_registered_model_alias(name, PREVIOUS, champion.version)
        client.set_registered_model_alias(name, CHAMPION, candidate_version)
    return Registration(name, candidate_version, promoted, reason)


def resolve_model_directory(model: str) -> tuple[Path, str | None]:
    """A saved model directory for ``model``: a local squad-qa model directory, or an MLflow model URI
    (``runs:/<id>/model``, ``models:/<name>@champion``) downloaded from the tracking server.

    Returns the directory and the run id the model was logged in (None for a local directory).
    """
    local = Path(model)
    if local.is_dir():
        return local, None
    from mlflow.models import get_model_info

    info = get_model_info(model)
    root = Path(mlflow.artifacts.download_artifacts(artifact_uri=model))
    return root / "artifacts" / "model", info.run_id


def log_metrics_to_run(run_id: str, metrics: Mapping[str, float]) -> None:
    """Add metrics to an existing (possibly finished) run, e.g. a later benchmark of its model."""
    client = MlflowClient()
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))
