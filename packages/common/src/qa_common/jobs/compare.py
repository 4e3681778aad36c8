"""The compare job: a leaderboard of an experiment's runs, accuracy against cost, with its Pareto front.

    squad-qa compare --experiment squad-qa --output-dir outputs/compare

Runs of every architecture line up because the shared job logs the same metric names. Only runs evaluated
on the same data (the ``eval_data_digest`` tag) are ranked together: by default the data most runs used.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COMPARE_KIND = "compare"

# (column title, metric key, format) of the leaderboard, in order.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("EM", "exact", "{:.2f}"),
    ("F1", "f1", "{:.2f}"),
    ("HasAns F1", "HasAns_f1", "{:.2f}"),
    ("NoAns", "NoAns_exact", "{:.2f}"),
    ("HasAns F1 (answer all)", "answer_all_HasAns_f1", "{:.2f}"),
    ("params (M)", "parameters_total", "{:.1f}"),
    ("trainable (M)", "parameters_trainable", "{:.1f}"),
    ("size (MB)", "model_size_bytes", "{:.1f}"),
    ("peak mem (MB)", "bench_torch_peak_memory_mb", "{:.0f}"),
    ("questions/s", "bench_torch_questions_per_s", "{:.1f}"),
    ("latency p50 (ms)", "bench_torch_latency_p50_ms", "{:.1f}"),
    ("latency p95 (ms)", "bench_torch_latency_p95_ms", "{:.1f}"),
)
SCALES = {"parameters_total": 1e-6, "parameters_trainable": 1e-6, "model_size_bytes": 1e-6}


@dataclass
class RunSummary:
    """What the leaderboard needs of one run."""

    run_id: str
    name: str
    adapter: str
    preset: str
    hardware: str
    eval_data_digest: str
    metrics: dict[str, float]
    train_loss: list[tuple[int, float]] = field(default_factory=list)

    def value(self, key: str) -> float:
        return self.metrics.get(key, math.nan)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For (accuracy, cost) points, whether each is Pareto-optimal: no other point is at least as accurate
    and at most as costly with one of the two strictly better. Points with a NaN are never on the front."""
    flags = []
    for index, (accuracy, cost) in enumerate(points):
        if math.isnan(accuracy) or math.isnan(cost):
            flags.append(False)
            continue
        dominated = any(
            other_index != index and other_accuracy >= accuracy and other_cost <= cost
            and (other_accuracy > accuracy or other_cost < cost)
            for other_index, (other_accuracy, other_cost) in enumerate(points)
            if not (math.isnan(other_accuracy) or math.isnan(other_cost))
        )
        flags.append(not dominated)
    return flags


def select_comparable(runs: Sequence[RunSummary], eval_data_digest: str | None = None) -> tuple[list[RunSummary], str]:
    """The runs evaluated on ``eval_data_digest`` (default: the digest most runs share), best EM first."""
    scored = [run for run in runs if not math.isnan(run.value("exact")) and run.eval_data_digest]
    if not scored:
        return [], ""
    digest = eval_data_digest or Counter(run.eval_data_digest for run in scored).most_common(1)[0][0]
    chosen = [run for run in scored if run.eval_data_digest == digest]
    return sorted(chosen, key=lambda run: (-run.value("exact"), run.name)), digest


def leaderboard_rows(runs: Sequence[RunSummary]) -> list[dict[str, Any]]:
    """One row per run: identity, the COLUMNS metrics (scaled), and whether it is on the EM-latency front."""
    front = pareto_front([(run.value("exact"), run.value("bench_torch_latency_p50_ms")) for run in runs])
    rows = []
    for run, on_front in zip(runs, front, strict=True):
        row: dict[str, Any] = {"run": run.name, "run_id": run.run_id, "adapter": run.adapter, "preset": run.preset,
                               "hardware": run.hardware}
        for _, key, _ in COLUMNS:
            row[key] = run.value(key) * SCALES.get(key, 1.0)
        row["pareto_em_latency"] = on_front
        rows.append(row)
    return rows


def leaderboard_markdown(rows: Sequence[dict[str, Any]], digest: str) -> str:
    """The leaderboard as a markdown table; * marks runs on the EM-latency Pareto front."""
    header = ["run", "adapter", "preset", *[title for title, _, _ in COLUMNS], "hardware"]
    lines = [f"Evaluation data digest `{digest}`; * = on the EM vs latency Pareto front.", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in rows:
        cells = [("* " if row["pareto_em_latency"] else "") + row["run"], row["adapter"], row["preset"]]
        for _, key, fmt in COLUMNS:
            cells.append("" if math.isnan(row[key]) else fmt.format(row[key]))
        cells.append(row["hardware"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_accuracy_against(rows: Sequence[dict[str, Any]], cost_key: str, cost_label: str, path: Path) -> None:
    """EM against a cost, the Pareto front drawn as a step line, each point labelled with its run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [(row[cost_key], row["exact"], row["run"]) for row in rows
              if not (math.isnan(row[cost_key]) or math.isnan(row["exact"]))]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    if points:
        costs, accuracies, names = zip(*points, strict=True)
        front = pareto_front([(accuracy, cost) for cost, accuracy, _ in points])
        axes.scatter(costs, accuracies, c=["tab:red" if on else "tab:blue" for on in front], zorder=3)
        for cost, accuracy, name in points:
            axes.annotate(name, (cost, accuracy), fontsize=8, xytext=(4, 4), textcoords="offset points")
        front_points = sorted((cost, accuracy) for (cost, accuracy, _), on in zip(points, front, strict=True) if on)
        if front_points:
            axes.step(*zip(*front_points, strict=True), where="post", color="tab:red", label="Pareto front")
            axes.legend()
    axes.set_xlabel(cost_label)
    axes.set_ylabel("exact match (EM)")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_training_curves(runs: Sequence[RunSummary], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        if run.train_loss:
            steps, losses = zip(*run.train_loss, strict=True)
            axes.plot(steps, losses, label=run.name)
    axes.set_xlabel("step")
    axes.set_ylabel("training loss")
    if any(run.train_loss for run in runs):
        axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run_compare(experiment: str, output_dir: Path, eval_data_digest: str | None = None) -> dict[str, Any]:
    """Write the leaderboard (markdown, table) and plots to ``output_dir`` and log them as a compare run."""
    from qa_common.tracking import runs as tracked_runs

    summaries = tracked_runs.run_summaries(experiment, exclude_kind=COMPARE_KIND)
    chosen, digest = select_comparable(summaries, eval_data_digest)
    if not chosen:
        raise ValueError(f"experiment {experiment!r} has no finished runs with evaluation metrics to compare")
    rows = leaderboard_rows(chosen)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    markdown = leaderboard_markdown(rows, digest)
    (output_dir / "leaderboard.md").write_text(markdown)
    plot_accuracy_against(rows, "bench_torch_latency_p50_ms", "latency p50 at batch 1 (ms)",
                          output_dir / "accuracy_vs_latency.png")
    plot_accuracy_against(rows, "model_size_bytes", "size on disk (MB)", output_dir / "accuracy_vs_size.png")
    plot_training_curves(chosen, output_dir / "training_curves.png")
    run_id = tracked_runs.log_compare_run(experiment, rows, output_dir, kind=COMPARE_KIND,
                                          tags={"eval_data_digest": digest, "compared_runs": len(rows)})
    print(markdown)
    print(f"leaderboard and plots in {output_dir}; MLflow run {run_id}")
    return {"run_id": run_id, "rows": rows, "eval_data_digest": digest}
