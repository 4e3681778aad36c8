"""Kernel choices for a bert-base-sized BERT reader on one GPU, side by side: where issue 10's remaining time is.

    python3 scripts/encoder_variants.py --tokenizer .data/gpu/bert-uncased-tokenizer \\
        --data .data/gpu/validation-v2.0.json --out $OUT/variants.jsonl
    python3 scripts/encoder_variants.py --preset tiny --batch-size 2 --sequence-length 32 --examples 20 \\
        --train-batch-size 2 --steps 2 --out /tmp/v.jsonl     # a CPU smoke run (no figures)

Every row is one variant of `bert_qa.fused.PackedBertQA` (or transformers' own module) in one setting, appended to
``--out`` as soon as it is measured (a time limit keeps what was done). Settings:

- ``full``: model only, ``--batch-size`` x ``--sequence-length`` windows without padding (issue 10: 7,000 seq/s);
- ``windows``: model only, the data's real windows in token-budget batches (``--max-batch-tokens``), packed;
- ``train``: one fused-AdamW step of the span loss on full ``--train-batch-size`` x ``--sequence-length``
  windows, bf16 weights (issue 10: 2,500 features/s).

A variant is names joined by ``+``: ``hf`` (transformers' BertForQuestionAnswering) or ``packed`` first, then any of
``cudnn`` (SDPA tries cuDNN attention first), ``compile`` (torch.compile of each encoder layer: one graph for all
12), ``autotune`` (that compile in mode max-autotune-no-cudagraphs), ``tanhgelu`` (``approximate_gelu``: the
feed-forward's first projection and GELU as one cuBLASLt GEMM with a GELU epilogue, the tanh approximation of
BERT's erf GELU; its logit difference against the exact eager module is recorded). ``compile`` is
`PackedBertQA.compile_layers`. Rows ``gemm-floor`` (the encoder's linear
layers alone, on the same tokens) and ``attention-<backend>`` (SDPA alone) bound what any variant can reach.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from qa_common.jobs.benchmark import synchronise
from qa_common.jobs.speed import seconds_per_call

DEFAULT_VARIANTS = ("full:hf,full:packed,full:packed+cudnn,full:packed+tanhgelu+cudnn,full:packed+compile,"
                    "full:packed+compile+cudnn,windows:packed,windows:packed+compile,train:packed,"
                    "train:packed+cudnn,train:packed+compile+cudnn,full:packed+autotune+cudnn")


def timed(run, seconds: float, warmup: int = 2) -> tuple[float, int]:
    """Seconds per call of ``run`` over about ``seconds`` of calls (at least 3), after ``warmup``; and the calls."""
    one = seconds_per_call(run, repeats=1, warmup=warmup)
    calls = max(3, int(seconds / max(one, 1e-6)))
    return seconds_per_call(run, repeats=calls, warmup=0), calls


def attention_context(parts: set[str]):
    if "cudnn" not in parts or not torch.cuda.is_available():
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
             SDPBackend.MATH]
    return sdpa_kernel(order, set_priority=True)


def build(args, parts: set[str], device: str, dtype: torch.dtype, base: str):
    from bert_qa.fused import PackedBertQA
    from qa_common.adapter import get_adapter

    adapter = get_adapter("bert_qa")
    overrides = {"tokenizer_name": args.tokenizer} if args.tokenizer else {}
    model = adapter.build(adapter.config(args.preset, {**overrides, "max_length": args.sequence_length}))
    torch.manual_seed(0)
    module = model.module.to(device, dtype).eval()
    if base == "hf":
        return model, module, module
    packed = PackedBertQA(module, approximate_gelu="tanhgelu" in parts)
    if {"compile", "autotune"} & parts:
        packed.compile_layers(mode="max-autotune-no-cudagraphs" if "autotune" in parts else None, dynamic=False)
    return model, module, packed


def full_inputs(config, batch: int, length: int, device: str, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, config.vocab_size, (batch, length), generator=generator).to(device)
    return ids


def run_full(args, parts, device, dtype, base) -> dict:
    _, module, runner = build(args, parts, device, dtype, base)
    ids = full_inputs(module.config, args.batch_size, args.sequence_length, device)
    with torch.inference_mode(), attention_context(parts):
        began = time.perf_counter()
        output = runner(input_ids=ids)
        synchronise()
        first = time.perf_counter() - began
        seconds, calls = timed(lambda: runner(input_ids=ids), args.seconds)
        figures = {"sequences_per_s": args.batch_size / seconds, "ms_per_batch": seconds * 1000, "calls": calls,
                   "first_call_s": first}
        if "tanhgelu" in parts or {"compile", "autotune"} & parts or base == "hf":
            from bert_qa.fused import PackedBertQA

            exact = PackedBertQA(module)
            reference = exact(input_ids=ids[:32])
            mine = runner(input_ids=ids[:32])
            figures["max_start_logit_diff_vs_packed_eager"] = float(
                (mine.start_logits[:32].float() - reference.start_logits.float()).abs().max())
        del output
    return figures


def run_windows(args, parts, device, dtype, base, cache: dict) -> dict:
    from qa_common.data.readers import load_squad
    from qa_common.extractive import InferenceOptions, PackedBatch

    model, module, runner = build(args, parts, device, dtype, base)
    if "features" not in cache:
        examples = load_squad(args.data).examples
        examples = examples[: args.examples] if args.examples else examples
        cache["features"] = model.windows(examples, with_labels=False)
    features = cache["features"]
    options = InferenceOptions(max_batch_tokens=args.max_batch_tokens)
    batches = []
    for indices, length, rows in model.batch_plan(features.lengths(), 256, options):
        batch, _ = model.pack(features, indices, length, rows)
        batches.append(PackedBatch.from_numpy(batch, torch.device(device)).inputs)
    forward = runner.forward_packed if hasattr(runner, "forward_packed") else None
    if forward is None:
        raise SystemExit("windows: packed variants only")
    def run_all():
        for batch in batches:
            forward(**batch)

    with torch.inference_mode(), attention_context(parts):
        began = time.perf_counter()
        run_all()
        synchronise()
        first = time.perf_counter() - began
        seconds, calls = timed(run_all, args.seconds, warmup=1)
    lengths = features.lengths()
    return {"windows_per_s": len(features) / seconds, "windows": len(features), "batches": len(batches),
            "mean_tokens": float(lengths.mean()), "first_pass_s": first, "passes": calls}


def run_train(args, parts, device, dtype, base) -> dict:
    _, module, runner = build(args, parts, device, dtype, base)
    module.train()
    runner.train()
    batch, length = args.train_batch_size, args.sequence_length
    ids = full_inputs(module.config, batch, length, device, seed=1)
    generator = torch.Generator().manual_seed(2)
    starts = torch.randint(1, length - 31, (batch,), generator=generator).to(device)
    ends = starts + torch.randint(0, 30, (batch,), generator=generator).to(device)
    fused = device == "cuda"
    optimizer = torch.optim.AdamW([p for p in runner.parameters() if p.requires_grad], lr=5e-5, weight_decay=0.01,
                                  fused=fused or None, foreach=None if fused else True)

    def step():
        output = runner(input_ids=ids)
        loss = (F.cross_entropy(output.start_logits.float(), starts)
                + F.cross_entropy(output.end_logits.float(), ends)) / 2
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    with attention_context(parts):
        began = time.perf_counter()
        step()
        synchronise()
        first = time.perf_counter() - began
        seconds, calls = timed(step, args.seconds, warmup=2)
    return {"features_per_s": batch / seconds, "ms_per_step": seconds * 1000, "steps": calls, "first_step_s": first,
            "batch_size": batch}


def run_floors(args, device, dtype) -> list[dict]:
    """The encoder's GEMMs alone (bert-base: Q/K/V fused, output, two feed-forward) and SDPA alone, per backend."""
    from qa_common.adapter import get_adapter

    adapter = get_adapter("bert_qa")
    overrides = {"tokenizer_name": args.tokenizer} if args.tokenizer else {}
    config = adapter.config(args.preset, overrides)
    hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    tokens = args.batch_size * args.sequence_length
    x = torch.randn(tokens, hidden, device=device, dtype=dtype)
    y = torch.randn(tokens, inner, device=device, dtype=dtype)
    weights = [torch.randn(3 * hidden, hidden, device=device, dtype=dtype) * 0.02,
               torch.randn(hidden, hidden, device=device, dtype=dtype) * 0.02,
               torch.randn(inner, hidden, device=device, dtype=dtype) * 0.02,
               torch.randn(hidden, inner, device=device, dtype=dtype) * 0.02]
    biases = [torch.zeros(w.shape[0], device=device, dtype=dtype) for w in weights]

    def gemms():
        for _ in range(layers):
            for weight, bias in zip(weights, biases, strict=True):
                F.linear(y if weight.shape[1] == inner else x, weight, bias)

    rows = []
    with torch.inference_mode():
        seconds, _ = timed(gemms, args.seconds)
        flops = 2.0 * tokens * sum(w.numel() for w in weights) * layers
        rows.append({"variant": "gemm-floor", "ms_per_batch": seconds * 1000, "tflops_per_s": flops / seconds / 1e12,
                     "sequences_per_s_if_only_gemms": args.batch_size / seconds})
        q = torch.randn(args.batch_size, heads, args.sequence_length, hidden // heads, device=device, dtype=dtype)
        attention_flops = 4.0 * args.batch_size * heads * args.sequence_length ** 2 * (hidden // heads) * layers
        if device == "cuda":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                        "efficient": SDPBackend.EFFICIENT_ATTENTION}
        else:
            backends = {"default": None}
        for name, backend in backends.items():
            row = {"variant": f"attention-{name}"}
            try:
                context = sdpa_kernel([backend]) if backend is not None else contextlib.nullcontext()
                with context:
                    seconds, _ = timed(lambda: [F.scaled_dot_product_attention(q, q, q) for _ in range(layers)],
                                       args.seconds)
                row.update({"ms_per_batch": seconds * 1000, "tflops_per_s": attention_flops / seconds / 1e12})
            except Exception as error:  # noqa: BLE001 - a backend this GPU lacks
                row["failed"] = f"{type(error).__name__}: {str(error)[:300]}"
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help="comma-separated SETTING:VARIANT (settings full, windows, train), or 'floors'")
    parser.add_argument("--preset", default="random-bert-base")
    parser.add_argument("--tokenizer", default=None)
    parser.add_argument("--data", default=None, help="SQuAD file for the windows setting")
    parser.add_argument("--examples", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--train-batch-size", type=int, default=128)
    parser.add_argument("--sequence-length", type=int, default=384)
    parser.add_argument("--max-batch-tokens", type=int, default=65536)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per row")
    parser.add_argument("--floors", action="store_true", help="also the gemm-floor and attention rows, first")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from qa_common.jobs.speed import hardware_description

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    common = {"hardware": hardware_description(), "torch": torch.__version__,
              "commit": os.environ.get("SQUAD_QA_COMMIT", ""), "preset": args.preset,
              "sequence_length": args.sequence_length}

    def write(row: dict) -> None:
        with args.out.open("a") as f:
            f.write(json.dumps({**common, **row}) + "\n")
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)

    if args.floors:
        for row in run_floors(args, device, dtype):
            write(row)
    cache: dict = {}
    for spec in [s.strip() for s in args.variants.split(",") if s.strip()]:
        setting, _, variant = spec.partition(":")
        names = variant.split("+")
        base, parts = names[0], set(names[1:])
        began = time.perf_counter()
        row = {"setting": setting, "variant": variant}
        try:
            if base not in ("hf", "packed"):
                raise ValueError(f"{variant}: the first name is hf or packed")
            if setting == "full":
                row.update(run_full(args, parts, device, dtype, base))
            elif setting == "windows":
                row.update(run_windows(args, parts, device, dtype, base, cache))
            elif setting == "train":
                row.update(run_train(args, parts, device, dtype, base))
            else:
                raise ValueError(f"unknown setting {setting!r}")
        except Exception as error:  # noqa: BLE001 - one variant failing leaves the others' rows
            row["failed"] = f"{type(error).__name__}: {str(error)[:400]}"
        row["seconds"] = time.perf_counter() - began
        write(row)
        torch._dynamo.reset()
        if cuda:
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
