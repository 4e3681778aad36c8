"""The promotion gate with limits, the challenger alias, and rollback, on a real MLflow store (SQLite)."""

from __future__ import annotations

import mlflow
import pytest
from mlflow import MlflowClient

from qa_common.cli import main
from qa_common.tracking import models

NAME = "squad-qa"


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("squad-qa")
    yield MlflowClient()
    mlflow.set_tracking_uri(None)


def candidate(exact: float, *, digest: str = "d1", latency_ms: float | None = 20.0, size_bytes: float = 5e6,
              register: bool = True) -> tuple[str, str | None]:
    """A run with a logged model and the job's metrics; registered with the job's version tags."""
    with mlflow.start_run() as run:
        metrics = {"exact": exact, "f1": exact + 1, "model_size_bytes": size_bytes, "no_answer_threshold": 0.1}
        if latency_ms is not None:
            metrics[models.LATENCY_METRIC] = latency_ms
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"eval_data_digest": digest, "adapter": "bert_qa", "preset": "tiny"})
        info = mlflow.pyfunc.log_model(name="model", python_model=_Echo())
    if not register:
        return run.info.run_id, None
    version = models.register(info.model_uri, NAME, {"exact": exact, "f1": exact + 1, "eval_data_digest": digest})
    return run.info.run_id, str(version)


def alias(client: MlflowClient, name: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(NAME, name).version)
    except mlflow.exceptions.MlflowException:
        return None


def test_the_gate_accepts_a_better_candidate_refuses_a_worse_one_and_keeps_it_as_challenger(store):
    _, first = candidate(50.0)
    assert models.promote_if_better(NAME, first).promoted
    _, better = candidate(55.0)
    decision = models.promote_if_better(NAME, better)
    assert decision.promoted and decision.reason == (
        "exact 55.0000 > champion version 1 exact 50.0000 on the same evaluation data")
    assert (alias(store, "champion"), alias(store, "previous-champion")) == (better, first)
    _, worse = candidate(52.0)
    decision = models.promote_if_better(NAME, worse)
    assert not decision.promoted and "exact 52.0000 <= champion version 2" in decision.reason
    assert (alias(store, "champion"), alias(store, "challenger")) == (better, worse)
    tags = store.get_model_version(NAME, worse).tags
    assert tags["promotion_decision"] == "rejected" and tags["promotion_reason"] == decision.reason
    # Other evaluation data: not comparable, whatever the score.
    _, other = candidate(90.0, digest="d2")
    decision = models.promote_if_better(NAME, other)
    assert not decision.promoted and decision.reason.startswith("not comparable")
    assert store.get_registered_model(NAME).tags[models.HISTORY_TAG] == f"{first},{better}"


def test_latency_and_size_limits_refuse_a_more_accurate_but_costlier_candidate(store):
    _, first = candidate(50.0)
    models.promote_if_better(NAME, first)
    _, slow = candidate(60.0, latency_ms=80.0)
    decision = models.promote_if_better(NAME, slow, max_latency_ms=50.0)
    assert not decision.promoted
    assert decision.reason == "over limits: bench_torch_latency_p50_ms 80 ms > limit 50 ms"
    _, big = candidate(61.0, size_bytes=400e6)
    decision = models.promote_if_better(NAME, big, max_latency_ms=50.0, max_size_bytes=100e6)
    assert not decision.promoted and decision.reason == "over limits: model_size_bytes 400 MB > limit 100 MB"
    _, unmeasured = candidate(62.0, latency_ms=None)
    decision = models.promote_if_better(NAME, unmeasured, max_latency_ms=50.0)
    assert not decision.promoted and "no bench_torch_latency_p50_ms measured" in decision.reason
    _, good = candidate(63.0, latency_ms=30.0, size_bytes=50e6)
    decision = models.promote_if_better(NAME, good, max_latency_ms=50.0, max_size_bytes=100e6)
    assert decision.promoted and decision.reason.endswith("; within limits")
    assert alias(store, "champion") == good and alias(store, "challenger") == unmeasured


def test_rollback_restores_the_previous_champion_and_walks_back_through_the_history(store):
    versions = []
    for exact in (50.0, 55.0, 60.0):
        _, version = candidate(exact)
        assert models.promote_if_better(NAME, version).promoted
        versions.append(version)
    restored = models.rollback(NAME)
    assert restored.version == versions[1] and alias(store, "champion") == versions[1]
    assert alias(store, "previous-champion") == versions[0]
    demoted = store.get_model_version(NAME, versions[2]).tags
    assert demoted["promotion_decision"] == "rolled back"
    assert demoted["promotion_reason"] == f"rolled back: champion returned from version {versions[2]} to version " \
        f"{versions[1]}"
    models.rollback(NAME)
    assert alias(store, "champion") == versions[0] and alias(store, "previous-champion") is None
    with pytest.raises(models.PromotionError, match="no previous champion to roll back to"):
        models.rollback(NAME)
    # The champion still resolves to a loadable model after all of it.
    assert mlflow.pyfunc.load_model(f"models:/{NAME}@champion") is not None


def test_promote_command_registers_a_run_promotes_it_and_rolls_back(store, capsys):
    _, first = candidate(50.0)
    models.promote_if_better(NAME, first)
    run_id, _ = candidate(70.0, register=False)
    assert main(["promote", "--run-id", run_id, "--max-latency-ms", "100", "--max-size-mb", ""]) == 0
    out = capsys.readouterr().out
    assert "version 2: promoted to champion: exact 70.0000 > champion version 1" in out
    assert store.get_model_version(NAME, "2").run_id == run_id and alias(store, "champion") == "2"
    # Promoting the same run again finds its version instead of registering another.
    assert main(["promote", "--run-id", run_id]) == 0
    assert "already the champion" in capsys.readouterr().out
    assert len(store.search_model_versions(f"name='{NAME}'")) == 2
    assert main(["promote", "--rollback", "true"]) == 0
    assert alias(store, "champion") == "1" and "is version 1 again" in capsys.readouterr().out
    assert main(["promote", "--rollback"]) == 2
    assert "no previous champion" in capsys.readouterr().err
    assert main(["promote", "--version", "7"]) == 2
    assert "squad-qa has no version 7" in capsys.readouterr().err
    assert main(["promote"]) == 2
    assert "exactly one of --version, --run-id or --rollback" in capsys.readouterr().err
    assert main(["promote", "--run-id", "0123456789abcdef0123456789abcdef"]) == 2
