"""transformers' ``pipeline("question-answering")`` end to end: the baseline a user would otherwise run.

Standalone on purpose (only the standard library, torch and transformers): the pipeline was removed in
transformers 5.3, so the side-by-side benchmark runs this file with another Python or PYTHONPATH that has an
older transformers (4.57, say) when the installed one lacks it:

    python hf_pipeline_baseline.py --model DIR --data questions.json --out result.json --batch-size 64

``questions.json`` is a list of {"id", "question", "context"}; ``result.json`` gets the answers (id -> text, ""
for no answer), questions/s, latency p50/p95 at batch 1, peak GPU memory and the transformers version.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def pipeline_available() -> tuple[bool, str]:
    """Whether this transformers has the question-answering pipeline, and its version."""
    import transformers

    try:
        from transformers.pipelines import check_task

        check_task("question-answering")
        return True, transformers.__version__
    except Exception:  # noqa: BLE001 - "Unknown task" (KeyError) from 5.3 on, or no check_task at all
        return False, transformers.__version__


def _synchronise() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_pipeline(model_dir: str, records: list[dict], *, batch_size: int = 64, latency_questions: int = 50,
                 max_seq_len: int = 384, doc_stride: int = 128, max_question_len: int = 64,
                 max_answer_len: int = 30, dtype: str = "bfloat16") -> dict:
    """Answer ``records`` with the QA pipeline on the first GPU (or the CPU); timings and answers."""
    import torch
    import transformers
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer, pipeline

    device = 0 if torch.cuda.is_available() else -1
    torch_dtype = getattr(torch, dtype) if device == 0 else torch.float32
    # Cast after loading: the from_pretrained keyword (torch_dtype / dtype) differs between versions.
    module = AutoModelForQuestionAnswering.from_pretrained(model_dir).to(torch_dtype).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    qa = pipeline("question-answering", model=module, tokenizer=tokenizer, device=device)
    options = {"max_seq_len": max_seq_len, "doc_stride": doc_stride, "max_question_len": max_question_len,
               "max_answer_len": max_answer_len, "handle_impossible_answer": True, "top_k": 1,
               # Answers cut at the chosen tokens' offsets, as squad-qa cuts them (the default widens them to
               # whole words): the same rule on both sides, so equal logits give equal answers.
               "align_to_words": False}
    inputs = [{"question": r["question"], "context": r["context"]} for r in records]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    qa(inputs[: min(len(inputs), batch_size)], batch_size=batch_size, **options)  # warm-up
    _synchronise()
    began = time.perf_counter()
    outputs = qa(inputs, batch_size=batch_size, **options)
    _synchronise()
    elapsed = time.perf_counter() - began
    if isinstance(outputs, dict):
        outputs = [outputs]
    answers = {r["id"]: (o[0] if isinstance(o, list) else o)["answer"] for r, o in zip(records, outputs, strict=True)}
    latencies = []
    for item in inputs[:latency_questions]:
        began = time.perf_counter()
        qa(item, **options)
        _synchronise()
        latencies.append(time.perf_counter() - began)
    latencies.sort()

    def percentile(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(round(share * (len(latencies) - 1))))] * 1000

    return {
        "answers": answers,
        "questions_per_s": len(records) / elapsed,
        "latency_p50_ms": percentile(0.5) if latencies else float("nan"),
        "latency_p95_ms": percentile(0.95) if latencies else float("nan"),
        "peak_memory_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else float("nan"),
        "transformers": transformers.__version__,
        "dtype": str(next(module.parameters()).dtype).replace("torch.", ""),
        "attention": str(getattr(module.config, "_attn_implementation", "")),
        "batch_size": batch_size,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--latency-questions", type=int, default=50)
    parser.add_argument("--max-seq-len", type=int, default=384)
    parser.add_argument("--doc-stride", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args(argv)
    available, version = pipeline_available()
    if not available:
        result = {"unavailable": f"no question-answering pipeline in transformers {version}",
                  "transformers": version}
    else:
        with open(args.data) as f:
            records = json.load(f)
        result = run_pipeline(args.model, records, batch_size=args.batch_size,
                              latency_questions=args.latency_questions, max_seq_len=args.max_seq_len,
                              doc_stride=args.doc_stride, dtype=args.dtype)
    with open(args.out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
