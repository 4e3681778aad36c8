"""Where a bert-base forward at batch 256 x 384 spends its GPU time: kernels by CUDA time, as JSON and a table.

    python3 scripts/profile_encoder.py --tokenizer .data/gpu/bert-uncased-tokenizer --out $OUT/profile.json
    python3 scripts/profile_encoder.py --preset tiny --batch-size 2 --sequence-length 32 --steps 1   # CPU smoke

Issue 10 asks for 7,000 sequences/s at 384 and batch 256 (bf16); transformers' module and bert_qa's packed module
run at about 5,700 on an H200, 41% of the FLOP ceiling, and torch.compile reached 6,348. This profiles, for
transformers' module and `bert_qa.fused.PackedBertQA` (bf16 weights, no padding, so SDPA's flash kernel): the
kernels grouped by name with their share of the CUDA time, and the matmuls' achieved TFLOP/s, to tell whether the
gap is in the GEMMs (cuBLAS shapes), attention, or the elementwise kernels torch.compile fuses.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def build(preset: str, tokenizer: str | None, device: str, dtype: torch.dtype):
    from qa_common.adapter import get_adapter

    adapter = get_adapter("bert_qa")
    overrides = {"tokenizer_name": tokenizer} if tokenizer else {}
    model = adapter.build(adapter.config(preset, overrides))
    return model.module.to(device, dtype).eval()


def kernel_table(profile, steps: int, device: bool) -> list[dict]:
    """Kernels by their own device time per step (operators by their own CPU time without a GPU), largest
    first."""
    rows = []
    for event in profile.key_averages():
        if device:
            self_us = getattr(event, "self_device_time_total", None)
            if self_us is None:
                self_us = getattr(event, "self_cuda_time_total", 0.0)
        else:
            self_us = event.self_cpu_time_total
        if self_us <= 0:
            continue
        rows.append({"name": event.key[:110], "calls": event.count // steps, "ms_per_step": self_us / 1000 / steps})
    rows.sort(key=lambda row: -row["ms_per_step"])
    total = sum(row["ms_per_step"] for row in rows) or 1.0
    for row in rows:
        row["share"] = row["ms_per_step"] / total
    return rows


def is_gemm_kernel(name: str, device: bool) -> bool:
    """Whether a profiler row is a GEMM: on a GPU its kernels only (cuBLAS's nvjet/gemm, CUTLASS; not the
    operators that launch them, whose time is the same again, nor attention's wgmma kernels); on a CPU the
    matmul operators."""
    name = name.lower()
    if device:
        return not name.startswith("aten::") and any(key in name for key in ("gemm", "nvjet", "cutlass")) \
            and not any(key in name for key in ("sdpa", "attention", "fmha", "flash"))
    return any(key in name for key in ("aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="random-bert-base")
    parser.add_argument("--tokenizer", default=None, help="tokenizer directory (random-bert-base needs its vocab)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--sequence-length", type=int, default=384)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--modules", default="transformers,packed", help="comma-separated: transformers, packed")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    from torch.profiler import ProfilerActivity, profile

    from bert_qa.fused import PackedBertQA
    from qa_common.jobs.speed import encoder_flops_per_sequence, hardware_description

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    result = {"hardware": hardware_description(), "torch": torch.__version__, "batch_size": args.batch_size,
              "sequence_length": args.sequence_length, "steps": args.steps, "modules": {}}
    for name in [part.strip() for part in args.modules.split(",") if part.strip()]:
        module = build(args.preset, args.tokenizer, device, dtype)
        if name == "packed":
            module = PackedBertQA(module)
        elif name != "transformers":
            raise SystemExit(f"unknown module {name!r}: transformers or packed")
        config = module.config
        ids = torch.randint(1000, config.vocab_size, (args.batch_size, args.sequence_length), device=device)
        flops = args.batch_size * encoder_flops_per_sequence(config.hidden_size, config.num_hidden_layers,
                                                             config.intermediate_size, args.sequence_length)
        with torch.inference_mode():
            for _ in range(3):
                module(input_ids=ids)
            if cuda:
                torch.cuda.synchronize()
            began = time.perf_counter()
            for _ in range(args.steps):
                module(input_ids=ids)
            if cuda:
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - began) / args.steps
            with profile(activities=activities) as profiled:
                for _ in range(args.steps):
                    module(input_ids=ids)
                if cuda:
                    torch.cuda.synchronize()
        rows = kernel_table(profiled, args.steps, cuda)
        matmul_ms = sum(row["ms_per_step"] for row in rows if is_gemm_kernel(row["name"], cuda))
        linear_flops = flops - args.batch_size * 4.0 * config.num_hidden_layers * args.sequence_length ** 2 \
            * config.hidden_size
        figures = {"sequences_per_s": args.batch_size / seconds, "ms_per_step": seconds * 1000,
                   "tflops_per_s": flops / seconds / 1e12,
                   "matmul_ms_per_step": matmul_ms,
                   "matmul_tflops_per_s": linear_flops / (matmul_ms / 1000) / 1e12 if matmul_ms else None,
                   "kernels": rows[:25]}
        result["modules"][name] = figures
        print(f"\n## {name}: {figures['sequences_per_s']:,.0f} sequences/s, {figures['ms_per_step']:.2f} ms a step, "
              f"{figures['tflops_per_s']:.0f} TFLOP/s; matmuls {matmul_ms:.2f} ms"
              + (f" ({figures['matmul_tflops_per_s']:.0f} TFLOP/s)" if matmul_ms else ""))
        print("| kernel | calls | ms/step | share |\n| --- | --- | --- | --- |")
        for row in rows[:15]:
            print(f"| {row['name']} | {row['calls']} | {row['ms_per_step']:.3f} | {row['share']:.1%} |")
        del module
        if cuda:
            torch.cuda.empty_cache()
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
