"""Sweep of the extractive inference options on one model: which combination is fastest on this GPU.

    python scripts/bench_inference.py --data validation-v2.0.json --configs eager,graphs,compile --out sweep.jsonl

One model (``--model``: ``ADAPTER:PRESET[:JSON]``, default bert_qa:random-bert-base, or a saved model directory) is
built once; every config re-configures its runner (`InferenceOptions`) and measures, with the functions of
`qa_common.jobs.speed`: model-only sequences/s at ``--sequence-length`` for ``--batch-sizes`` (no padding),
windows/s on the data's real windows (token-budget batches), end-to-end questions/s and batch-1 latency
p50/p95, plus the seconds the config took (compile and capture included). One JSON line per config is
appended to ``--out`` as soon as it is measured, so a time limit that stops the sweep keeps what was done.

Configs (comma-separated names):

- ``eager``: bf16 weights, token-budget batches, spans on the device, and (bert_qa) the packed module: fused
  Q/K/V, batches with padding run unpadded through varlen flash attention (`InferenceOptions.packed`);
- ``unpacked``: eager with transformers' module as it is (SDPA, padded batches);
- ``graphs``: eager + CUDA graphs for batches of at most 8 windows (static shapes: lengths to multiples of 32);
- ``compile``: torch.compile mode "default", dynamic shapes after the first recompile;
- ``compile-mat``: mode "max-autotune-no-cudagraphs", dynamic shapes after the first recompile;
- ``compile-static``: mode "default", dynamic=False, lengths bucketed by 64;
- ``compile-mat-static``: mode "max-autotune-no-cudagraphs", dynamic=False, lengths bucketed by 64
  (one compile per bucket: slow to warm up);
- ``compile-ro``: mode "reduce-overhead" (inductor's own CUDA graphs), dynamic=False, lengths bucketed by 64;
- ``fp16``: eager with fp16 weights;
- ``budget-N``: eager with a token budget of N per batch (e.g. budget-16384).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from qa_common.extractive import InferenceOptions

CONFIGS = {
    "eager": {},
    "unpacked": {"packed": False},
    "graphs": {"cuda_graphs": True},
    "compile": {"compile": True, "compile_mode": "default", "compile_dynamic": None},
    "compile-mat": {"compile": True, "compile_mode": "max-autotune-no-cudagraphs", "compile_dynamic": None},
    "compile-static": {"compile": True, "compile_mode": "default", "compile_dynamic": False,
                       "static_length_multiple": 64},
    "compile-mat-static": {"compile": True, "compile_mode": "max-autotune-no-cudagraphs", "compile_dynamic": False,
                           "static_length_multiple": 64},
    "compile-ro": {"compile": True, "compile_mode": "reduce-overhead", "compile_dynamic": False,
                   "static_length_multiple": 64},
    "fp16": {"precision": "fp16"},
    "approx-gelu": {"approximate_gelu": True},
    "compile-approx-gelu": {"compile": True, "compile_mode": "default", "compile_dynamic": None,
                            "approximate_gelu": True},
    "compile-graphs": {"compile": True, "compile_mode": "default", "compile_dynamic": None, "cuda_graphs": True},
    # predict tokenises and queues chunks of questions, merging the previous chunk while the GPU runs the next
    "chunk-256": {"chunk_questions": 256},
    "chunk-512": {"chunk_questions": 512},
}


def options_of(name: str, budget: int) -> InferenceOptions:
    base = InferenceOptions(max_batch_tokens=budget)
    if name.startswith("budget-"):
        return replace(base, max_batch_tokens=int(name.split("-", 1)[1]))
    if name not in CONFIGS:
        raise SystemExit(f"unknown config {name!r}; known: {', '.join(CONFIGS)}, budget-N")
    return replace(base, **CONFIGS[name])


def load(spec: str, device: str):
    from qa_common.adapter import get_adapter, load_model
    from qa_common.jobs.speed import is_model_spec, parse_model_spec

    if is_model_spec(spec):
        adapter_name, preset, overrides = parse_model_spec(spec)
        adapter = get_adapter(adapter_name)
        model = adapter.build(adapter.config(preset, overrides))
    else:
        model, _ = load_model(Path(spec))
    return model.to(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="bert_qa:random-bert-base")
    parser.add_argument("--data", required=True)
    parser.add_argument("--configs", default="eager,graphs,compile,compile-mat")
    parser.add_argument("--max-batch-tokens", type=int, default=65536)
    parser.add_argument("--batch-sizes", default="1,32,256")
    parser.add_argument("--sequence-length", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=64, help="end to end: windows per batch without a budget")
    parser.add_argument("--examples", type=int, default=0)
    parser.add_argument("--latency-questions", type=int, default=100)
    parser.add_argument("--model-only-seconds", type=float, default=1.0)
    parser.add_argument("--peak-tflops", type=float, default=0.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from qa_common.data.readers import load_squad
    from qa_common.jobs.speed import (
        SpeedSettings,
        end_to_end,
        hardware_description,
        model_only,
        module_flops,
        peak_tflops,
        real_windows,
    )

    device = "cuda" if torch.cuda.is_available() else "cpu"
    examples = load_squad(args.data).examples
    examples = examples[: args.examples] if args.examples else examples
    model = load(args.model, device)
    features = model.windows(examples, with_labels=False)
    peak = peak_tflops(hardware_description(), args.peak_tflops or None)
    settings = SpeedSettings(batch_size=args.batch_size,
                             model_only_batch_sizes=tuple(int(b) for b in args.batch_sizes.split(",")),
                             sequence_length=args.sequence_length, model_only_seconds=args.model_only_seconds,
                             latency_questions=args.latency_questions, repeats=3)
    flops = module_flops(model.module)
    common = {"hardware": hardware_description(), "torch": torch.__version__, "model": args.model, "data": args.data,
              "questions": len(examples), "windows": len(features), "commit": os.environ.get("SQUAD_QA_COMMIT", ""),
              "command": shlex.join([os.path.basename(sys.executable), *sys.argv]), "peak_tflops": peak}
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        options = options_of(name, args.max_batch_tokens)
        began = time.perf_counter()
        row = {"config": name, **common, "options": {k: v for k, v in vars(options).items()}}
        try:
            row["applied"] = model.configure_inference(options)
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            row.update(model_only(model, model.inference, settings, flops, peak))
            row.update(real_windows(model, features, model.inference, args.batch_size, settings, flops, peak))
            # model.inference: the options as configure_inference applied them (no compile or graphs on a CPU).
            figures, _ = end_to_end(lambda batch: model.predict(batch, batch_size=args.batch_size), examples,
                                    settings)
            row.update(figures)
            if torch.cuda.is_available():
                row["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
            row["compile_fallback"] = bool(row["applied"].get("compile", "off") != "off"
                                           and model.runner.compiled is None)
        except Exception as error:  # noqa: BLE001 - one config failing leaves the others' rows
            row["failed"] = f"{type(error).__name__}: {str(error)[:400]}"
        row["seconds"] = time.perf_counter() - began
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()
                          if k not in common and k != "options"}), flush=True)
        try:
            import torch._dynamo as dynamo

            dynamo.reset()
        except Exception:  # noqa: BLE001 - only a cleanup
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
