"""The prompting study's table (the seed study's: accuracy and tokens/s per model, zero- and k-shot) regenerated
from the MLflow runs of a study, as markdown and a plot of accuracy against decode tokens/s, logged to the study's
parent run.

    squad-qa prompt-report --study <parent run id>      # or the newest study of --experiment
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COLUMNS = (("accuracy", "accuracy", "{:.1f}%"), ("exact", "EM", "{:.1f}"), ("f1", "F1", "{:.1f}"),
           ("HasAns_f1", "HasAns F1", "{:.1f}"), ("NoAns_exact", "NoAns", "{:.1f}"),
           ("decode_tokens_per_s", "tokens/s", "{:,.0f}"), ("prompt_processing_ms_mean", "prompt ms", "{:,.1f}"))


def report_rows(children: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per child run (``RunRecord``-like: params, tags, metrics): model, k and the figures of COLUMNS."""
    rows = []
    for child in children:
        row = {"model": child.params.get("model", child.name), "shots": int(child.params.get("shots", 0)),
               "code_path": child.tags.get("code_path", ""), "run_id": child.run_id}
        row.update({key: child.metrics.get(key, math.nan) for key, _, _ in COLUMNS})
        rows.append(row)
    return rows


def _cell(value: float, fmt: str) -> str:
    return "" if value is None or math.isnan(value) else fmt.format(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The seed study's layout: one line per model, for each k its accuracy and tokens/s; then every figure per
    (model, k)."""
    shots = sorted({row["shots"] for row in rows})
    models = list(dict.fromkeys(row["model"] for row in rows))
    by_key = {(row["model"], row["shots"]): row for row in rows}
    header = ["model"] + [f"{name} ({k}-shot)" for k in shots for name in ("accuracy", "tokens/s")]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for model in models:
        cells = [model]
        for k in shots:
            row = by_key.get((model, k))
            cells += ["", ""] if row is None else [_cell(row["accuracy"], "{:.1f}%"),
                                                    _cell(row["decode_tokens_per_s"], "{:,.0f}")]
        lines.append("| " + " | ".join(cells) + " |")
    detail = ["model", "k", *(label for _, label, _ in COLUMNS), "code path"]
    lines += ["", "| " + " | ".join(detail) + " |", "|" + " --- |" * len(detail)]
    for row in rows:
        cells = [row["model"], str(row["shots"]), *(_cell(row[key], fmt) for key, _, fmt in COLUMNS),
                 row["code_path"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_accuracy_against_speed(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """Accuracy against decode tokens/s (log scale), one marker per k, each point labelled with its model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for marker, k in zip("os^vD*", sorted({row["shots"] for row in rows})):
        points = [row for row in rows if row["shots"] == k
                  and not (math.isnan(row["accuracy"]) or math.isnan(row["decode_tokens_per_s"]))
                  and row["decode_tokens_per_s"] > 0]
        if not points:
            continue
        axes.scatter([row["decode_tokens_per_s"] for row in points], [row["accuracy"] for row in points],
                     marker=marker, label=f"{k}-shot", zorder=3)
        for row in points:
            axes.annotate(row["model"].rstrip("/").split("/")[-1], (row["decode_tokens_per_s"], row["accuracy"]),
                          fontsize=8, xytext=(4, 4), textcoords="offset points")
    axes.set_xscale("log")
    axes.set_xlabel("decode tokens/s (batch 1)")
    axes.set_ylabel("accuracy (gold answer in the generation), %")
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(parent_run_id: str, output_dir: Path | None = None) -> dict[str, Any]:
    """Read the study's child runs, write ``prompt_study.md`` and ``accuracy_vs_tokens_per_s.png`` (into
    ``output_dir``, or a temporary folder) and log both to the parent run. Returns the rows and the markdown."""
    from qa_common.tracking import studies

    children = studies.child_runs(parent_run_id)
    if not children:
        raise ValueError(f"run {parent_run_id} has no finished child runs to report on")
    rows = report_rows(children)
    markdown = markdown_table(rows)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(output_dir) if output_dir else Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        files = [folder / "prompt_study.md", folder / "accuracy_vs_tokens_per_s.png"]
        files[0].write_text(markdown)
        plot_accuracy_against_speed(rows, files[1])
        studies.log_to_run(parent_run_id, files=files)
    return {"rows": rows, "markdown": markdown}
