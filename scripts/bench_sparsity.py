"""Model-only GPU throughput of dense and pruned bert_qa models, and of 2:4 models on sparse tensor cores.

    python scripts/bench_sparsity.py DENSE PRUNED... [--sequence-length 384] [--batch-sizes 1,32] [--out f.json]

Each model is a saved model directory or an MLflow model URI (``runs:/<id>/model``, ``models:/squad-qa@x``).
Every model runs as it is saved (dense kernels, whatever its zeros); a model whose encoder weights are all 2:4
sparse runs a second time with them stored as PyTorch semi-structured sparse tensors
(``bert_qa.pruning.to_semi_structured``), with the largest logit difference against its dense run. Inputs are
random token ids at the given length; timings are CUDA-event timed after warm-up, in the given dtype. Models given
as URIs get the figures logged to their run as ``bench_sparse_*`` metrics. Needs a CUDA GPU (sparse tensor cores:
compute capability 8.0 or newer).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def sequences_per_s(module, inputs: dict[str, torch.Tensor], iterations: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            module(**inputs)
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iterations):
            module(**inputs)
        end.record()
        torch.cuda.synchronize()
    return inputs["input_ids"].shape[0] * iterations / (start.elapsed_time(end) / 1000)


def load(spec: str, dtype: torch.dtype):
    from transformers import AutoModelForQuestionAnswering

    from qa_common.tracking.models import resolve_model_directory

    directory, run_id = resolve_model_directory(spec)
    module = AutoModelForQuestionAnswering.from_pretrained(Path(directory), use_safetensors=True)
    return module.to("cuda", dtype).eval(), run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="saved model directories or MLflow model URIs")
    parser.add_argument("--sequence-length", type=int, default=384)
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_sparsity: needs a CUDA GPU (semi-structured sparse kernels run on sparse tensor cores)",
              file=sys.stderr)
        return 2
    from bert_qa.pruning import encoder_linears, is_two_of_four, to_semi_structured

    dtype = getattr(torch, args.dtype)
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    rows = []
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, {args.dtype}, "
          f"sequence length {args.sequence_length}")
    for spec in args.models:
        module, run_id = load(spec, dtype)
        layers = encoder_linears(module)
        total = sum(layer.weight.numel() for layer in layers.values())
        density = sum(int(torch.count_nonzero(layer.weight)) for layer in layers.values()) / total
        two_of_four = all(is_two_of_four(layer.weight) for layer in layers.values())
        generator = torch.Generator(device="cuda").manual_seed(0)
        row = {"model": spec, "weight_density": density, "two_of_four": two_of_four}
        for batch in batch_sizes:
            ids = torch.randint(1000, module.config.vocab_size, (batch, args.sequence_length), device="cuda",
                                generator=generator)
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            row[f"dense_kernels_seq_per_s_b{batch}"] = sequences_per_s(module, inputs, args.iterations)
        if two_of_four:
            ids = torch.randint(1000, module.config.vocab_size, (8, args.sequence_length), device="cuda",
                                generator=generator)
            inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            with torch.inference_mode():
                reference = module(**inputs).start_logits.float()
            to_semi_structured(module)
            with torch.inference_mode():
                row["semi_structured_max_abs_logit_diff"] = float(
                    (module(**inputs).start_logits.float() - reference).abs().max())
            for batch in batch_sizes:
                ids = torch.randint(1000, module.config.vocab_size, (batch, args.sequence_length), device="cuda",
                                    generator=generator)
                inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
                row[f"semi_structured_seq_per_s_b{batch}"] = sequences_per_s(module, inputs, args.iterations)
        rows.append(row)
        print(json.dumps(row))
        if run_id:
            from qa_common.tracking.models import log_metrics_to_run

            log_metrics_to_run(run_id, {f"bench_sparse_{key}": float(value) for key, value in row.items()
                                        if isinstance(value, (int, float))})
        del module
        torch.cuda.empty_cache()
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
