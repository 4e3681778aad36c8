import math
from pathlib import Path

import mlflow
import pytest

from qa_common.jobs.compare import (
    RunSummary,
    leaderboard_markdown,
    leaderboard_rows,
    pareto_front,
    run_compare,
    select_comparable,
)


def test_pareto_front_keeps_only_undominated_points():
    # (accuracy, cost): b dominates d (more accurate, cheaper); c ties a on cost but is less accurate.
    points = [(60.0, 10.0), (58.0, 5.0), (55.0, 10.0), (57.0, 6.0), (61.0, 30.0), (math.nan, 1.0)]
    assert pareto_front(points) == [True, True, False, False, True, False]
    assert pareto_front([(50.0, 5.0), (50.0, 5.0)]) == [True, True]


def _summary(name, digest, exact, latency, size=20e6, loss=()):
    return RunSummary(run_id=name + "-id", name=name, adapter="bert_qa", preset="tiny", hardware="CPU",
                      eval_data_digest=digest,
                      metrics={"exact": exact, "f1": exact + 1, "bench_torch_latency_p50_ms": latency,
                               "model_size_bytes": size, "parameters_total": 22_566_146.0},
                      train_loss=list(loss))


def test_select_comparable_ranks_runs_on_the_most_used_data_by_exact_match():
    runs = [_summary("a", "d1", 50.0, 3.0), _summary("b", "d1", 60.0, 9.0), _summary("c", "d2", 99.0, 1.0),
            _summary("no-metrics", "d1", math.nan, 1.0)]
    chosen, digest = select_comparable(runs)
    assert digest == "d1" and [run.name for run in chosen] == ["b", "a"]
    chosen, digest = select_comparable(runs, "d2")
    assert [run.name for run in chosen] == ["c"]


def test_leaderboard_rows_and_markdown():
    runs = [_summary("fast", "d", 55.0, 2.0), _summary("accurate", "d", 60.0, 8.0), _summary("worse", "d", 50.0, 9.0)]
    chosen, digest = select_comparable(runs)
    rows = leaderboard_rows(chosen)
    assert [(row["run"], row["pareto_em_latency"]) for row in rows] == [
        ("accurate", True), ("fast", True), ("worse", False)]
    assert rows[0]["parameters_total"] == pytest.approx(22.566146)
    markdown = leaderboard_markdown(rows, digest)
    lines = markdown.splitlines()
    assert lines[2].startswith("| run | adapter | preset | EM | F1 | HasAns F1 |")
    assert lines[4].startswith("| * accurate | bert_qa | tiny | 60.00 | 61.00 |")
    assert lines[6].startswith("| worse | bert_qa | tiny | 50.00 | 51.00 |")
    assert "| 22.6 |" in lines[4] and "| 8.0 |" in lines[4]


def test_compare_job_reads_an_experiment_and_logs_a_leaderboard(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    mlflow.set_experiment("cmp")
    for name, exact, latency, digest in (("small", 52.0, 3.0, "d"), ("big", 58.0, 12.0, "d"),
                                         ("slow-worse", 51.0, 20.0, "d"), ("other-data", 90.0, 1.0, "e")):
        with mlflow.start_run(run_name=name):
            mlflow.set_tags({"adapter": "bert_qa", "preset": name, "eval_data_digest": digest, "hardware": "CPU"})
            mlflow.log_metrics({"exact": exact, "f1": exact, "bench_torch_latency_p50_ms": latency,
                                "model_size_bytes": latency * 1e6})
            for step, loss in enumerate((5.0, 3.0, 2.0), start=1):
                mlflow.log_metric("train_loss", loss, step=step * 10)
    with mlflow.start_run(run_name="failed"):
        mlflow.log_metrics({"exact": 99.0})
        mlflow.set_tag("eval_data_digest", "d")
        run_id = mlflow.active_run().info.run_id
    mlflow.MlflowClient().set_terminated(run_id, "FAILED")

    result = run_compare("cmp", tmp_path / "out")
    assert result["eval_data_digest"] == "d"
    assert [(row["run"], row["pareto_em_latency"]) for row in result["rows"]] == [
        ("big", True), ("small", True), ("slow-worse", False)]
    for name in ("leaderboard.md", "accuracy_vs_latency.png", "accuracy_vs_size.png", "training_curves.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000 or name == "leaderboard.md"
    assert "| * big | bert_qa | big | 58.00 |" in (tmp_path / "out" / "leaderboard.md").read_text()

    client = mlflow.MlflowClient()
    compare_run = client.get_run(result["run_id"])
    assert compare_run.data.tags["squad_qa.kind"] == "compare"
    artifacts = {item.path for item in client.list_artifacts(result["run_id"])}
    assert {"leaderboard.json", "leaderboard.md", "accuracy_vs_latency.png", "training_curves.png"} <= artifacts
    # A second compare does not rank the first compare run.
    again = run_compare("cmp", tmp_path / "out2")
    assert [row["run"] for row in again["rows"]] == ["big", "small", "slow-worse"]
