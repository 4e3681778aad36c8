"""Issue 10's headline figures from a gpu_speed_suite.sh output folder, against the issue's targets, as markdown.

    python scripts/speed_summary.py OUT > OUT/SUMMARY.md

Reads speed.json (side by side), sweep.jsonl (inference options), train.json, train_compile.json and train_real.json
(training),
whichever exist; every table names the hardware, commit and command of its figures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TARGETS = {"model_seq_per_s_b256": 7000.0, "model_latency_b1_ms": 3.0, "real_windows_per_s": 14000.0,
           "pipeline_ratio": 10.0, "train_features_per_s": 2500.0}


def number(value, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def main(folder: str) -> int:
    out = Path(folder)
    lines = ["# Issue 10 speed suite", ""]
    speed_path = out / "speed.json"
    if speed_path.exists():
        speed = json.loads(speed_path.read_text())
        paths = {p["name"]: p for p in speed["paths"]}
        ours, plain, pipe = (paths.get(n, {}).get("figures", {}) for n in ("ours", "plain", "pipeline"))
        lines += ["## Side by side (speed.md has every figure)", "",
                  f"{speed['hardware']}, commit {speed['commit']}, `{speed['command']}`", "",
                  "| target | ours | plain | pipeline |", "| --- | --- | --- | --- |"]
        for key, label in (("model_seq_per_s_b256", "model-only seq/s b256 @384 (>= 7,000)"),
                           ("model_seq_per_s_b32", "model-only seq/s b32 @384"),
                           ("model_latency_b1_ms", "model-only latency b1 ms (< 3)"),
                           ("real_windows_per_s", "real windows/s (>= 14,000)"),
                           ("questions_per_s", "end-to-end questions/s"),
                           ("latency_p50_ms", "end-to-end p50 ms at batch 1"),
                           ("exact", "EM"), ("f1", "F1"), ("answers_differing_from_ours", "answers differing")):
            lines.append(f"| {label} | {number(ours.get(key), 2 if 'ms' in key or key in ('exact', 'f1') else 0)} | "
                         f"{number(plain.get(key), 2 if 'ms' in key or key in ('exact', 'f1') else 0)} | "
                         f"{number(pipe.get(key), 2 if 'ms' in key or key in ('exact', 'f1') else 0)} |")
        if ours.get("questions_per_s") and pipe.get("questions_per_s"):
            ratio = ours["questions_per_s"] / pipe["questions_per_s"]
            lines += ["", f"Ours / pipeline end to end: **{ratio:.1f}x** (target >= {TARGETS['pipeline_ratio']:.0f}x)"]
        elif "unavailable" in paths.get("pipeline", {}).get("notes", {}):
            lines += ["", f"Pipeline: {paths['pipeline']['notes']['unavailable']}"]
        others = [p for name, p in paths.items() if name not in ("ours", "plain", "pipeline")]
        if others:
            lines += ["", "| architecture | questions/s | p50 ms | p95 ms | peak MB | note |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for p in others:
                f = p["figures"]
                lines.append(f"| {p['name'].split(':')[0]} | {number(f.get('questions_per_s'))} | "
                             f"{number(f.get('latency_p50_ms'), 1)} | {number(f.get('latency_p95_ms'), 1)} | "
                             f"{number(f.get('peak_memory_mb'))} | {p['notes'].get('failed', '')} |")
    sweep_path = out / "sweep.jsonl"
    if sweep_path.exists():
        rows = [json.loads(line) for line in sweep_path.read_text().splitlines() if line.strip()]
        if rows:
            lines += ["", "## Inference options (sweep.jsonl)", "",
                      f"{rows[0]['hardware']}, commit {rows[0]['commit']}, `{rows[0]['command']}` (per config)", "",
                      "| config | seq/s b1 | latency b1 ms | seq/s b32 | seq/s b256 | ceiling b256 | real windows/s | "
                      "real ceiling | questions/s | p50 ms | seconds | note |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for r in rows:
                share = r.get("model_ceiling_share_b256")
                real_share = r.get("real_ceiling_share")
                lines.append(
                    f"| {r['config']} | {number(r.get('model_seq_per_s_b1'))} | "
                    f"{number(r.get('model_latency_b1_ms'), 2)} | "
                    f"{number(r.get('model_seq_per_s_b32'))} | {number(r.get('model_seq_per_s_b256'))} | "
                    f"{f'{share:.0%}' if share else 'n/a'} | {number(r.get('real_windows_per_s'))} | "
                    f"{f'{real_share:.0%}' if real_share else 'n/a'} | {number(r.get('questions_per_s'))} | "
                    f"{number(r.get('latency_p50_ms'), 2)} | {number(r.get('seconds'))} | "
                    f"{r.get('failed', '') or ('compile fell back to eager' if r.get('compile_fallback') else '')} |")
    for name in ("train.json", "train_compile.json", "train_real.json"):
        path = out / name
        if not path.exists():
            continue
        train = json.loads(path.read_text())
        real = (f", the real windows of {train['data']} (mean {train['mean_window_tokens']:.0f} tokens)"
                if train.get("data") else "")
        lines += ["", f"## Training at {train['sequence_length']}, batch {train['batch_size']}{real} ({name}; "
                  f"target >= {TARGETS['train_features_per_s']:,.0f} features/s)", "",
                  f"{train['hardware']}, commit {train['commit']}, transformers {train.get('transformers')}, "
                  f"`{train['command']}`", "",
                  "| variant | features/s | ceiling | optimizer | peak MB | note |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for variant, f in train["variants"].items():
            share = f.get("ceiling_share")
            lines.append(f"| {variant} | {number(f.get('features_per_s'))} | {f'{share:.0%}' if share else 'n/a'} | "
                         f"{f.get('optim', '')} | {number(f.get('peak_memory_mb'))} | {f.get('failed', '')} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
