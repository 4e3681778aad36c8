"""Issue 3's table from the MLflow runs of one experiment (scripts/gpu_smp_table.sh): EM/F1, measured density,
sizes and speed of every bert_qa run, as markdown on stdout and every param and metric as JSON.

    python3 scripts/smp_table.py --experiment smp_table [--bench bench_sparsity.json] [--out table.json]

Rows follow the runs' names (dense, smp50, smp10, smp50kd, ...). ``--bench``: scripts/bench_sparsity.py's JSON,
matched to a run by its saved model directory (``<output_dir>/model``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

COLUMNS = [("EM", "exact", "{:.2f}"), ("F1", "f1", "{:.2f}"), ("HasAns F1", "HasAns_f1", "{:.2f}"),
           ("NoAns EM", "NoAns_exact", "{:.2f}"), ("answer-all HasAns F1", "answer_all_HasAns_f1", "{:.2f}"),
           ("best EM", "best_exact", "{:.2f}"), ("density", "weight_density", "{:.4f}"),
           ("least / most in a matrix", "weight_density_min_matrix", "{:.3f}"),
           ("non-zero params", "parameters_non_zero", "{:,.0f}"), ("size MB", "model_size_bytes", "mb"),
           ("zip MB", "model_size_zip_bytes", "mb"), ("train s", "train_runtime_s", "{:.0f}")]
BENCH = [("seq/s b1", "dense_kernels_seq_per_s_b1"), ("seq/s b32", "dense_kernels_seq_per_s_b32"),
         ("seq/s b256", "dense_kernels_seq_per_s_b256")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="smp_table")
    parser.add_argument("--bench", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise SystemExit(f"no experiment {args.experiment!r} at {os.environ.get('MLFLOW_TRACKING_URI', 'default')}")
    bench = {}
    if args.bench and args.bench.is_file():
        bench = {str(Path(row["model"]).resolve()): row for row in json.loads(args.bench.read_text())}
    runs = []
    for run in client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"]):
        params, metrics = run.data.params, run.data.metrics
        model_dir = str((Path(params.get("output_dir", "")) / "model").resolve())
        runs.append({"run_name": run.info.run_name, "status": run.info.status, "run_id": run.info.run_id,
                     "params": params, "metrics": metrics, "bench_sparsity": bench.get(model_dir, {})})
    header = ["run", "status", "lr", "mask scope", "KD"] + [c[0] for c in COLUMNS] + [b[0] for b in BENCH]
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for run in runs:
        params, metrics = run["params"], run["metrics"]
        teacher = params.get("model.teacher", "None")
        kd = "no" if teacher in ("None", "") else (
            f"span a={params.get('model.distill_alpha')} T={params.get('model.distill_temperature')}"
            + (f" + hidden x{params['model.distill_hidden']}" if params.get("model.distill_hidden", "0.0")
               not in ("0.0", "0") else ""))
        cells = [run["run_name"], run["status"], params.get("learning_rate", ""),
                 params.get("model.mask_scope", "layer"), kd]
        for _, key, form in COLUMNS:
            value = metrics.get(key)
            cells.append("" if value is None else f"{value / 1e6:.1f}" if form == "mb" else form.format(value))
            if key == "weight_density_min_matrix" and value is not None:
                cells[-1] += " / " + form.format(metrics.get("weight_density_max_matrix", float("nan")))
        cells += [f"{run['bench_sparsity'][key]:,.0f}" if key in run["bench_sparsity"] else "" for _, key in BENCH]
        print("| " + " | ".join(cells) + " |")
    if args.out:
        args.out.write_text(json.dumps({"experiment": args.experiment, "commit": os.environ.get("SQUAD_QA_COMMIT"),
                                        "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
