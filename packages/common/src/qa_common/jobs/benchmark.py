"""Speed and size figures of a QA model: end to end (tokenise, model, decode) and model only.

Figures, not pass/fail: the job logs them to the run and prints them. Timings are wall-clock after a warm-up;
on CUDA the device is synchronised around every timed call.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from qa_common.adapter import QAModel
from qa_common.data.examples import SquadExample


def directory_size_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def hardware_description() -> str:
    """The accelerator (or CPU) a run used, for the leaderboard's hardware column."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    import os
    import platform

    return f"CPU {platform.machine()} ({os.cpu_count()} cores)"


def synchronise() -> None:
    """Wait for the GPU (if any), so that wall-clock timings include its work."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_memory_mb() -> float:
    """Peak GPU memory allocated (MiB), or on a CPU the process's peak resident set."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def benchmark_model(
    model: QAModel,
    examples: Sequence[SquadExample],
    *,
    batch_size: int = 32,
    latency_questions: int = 50,
    model_only_batch_sizes: Sequence[int] = (1, 32),
    sequence_length: int = 384,
    repeats: int = 5,
) -> dict[str, float]:
    """End-to-end questions/s at ``batch_size``, latency p50/p95 at batch 1, model-only sequences/s, peak memory."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    model.predict(examples[: min(len(examples), batch_size)], batch_size=batch_size)  # warm-up
    synchronise()
    began = time.perf_counter()
    model.predict(examples, batch_size=batch_size)
    synchronise()
    elapsed = time.perf_counter() - began
    figures = {"questions_per_s": len(examples) / elapsed, "questions": float(len(examples))}

    latencies = []
    for example in examples[:latency_questions]:
        began = time.perf_counter()
        model.predict([example], batch_size=1)
        synchronise()
        latencies.append(time.perf_counter() - began)
    figures["latency_p50_ms"] = float(np.percentile(latencies, 50) * 1000)
    figures["latency_p95_ms"] = float(np.percentile(latencies, 95) * 1000)

    runner = getattr(model, "runner", None)
    if runner is not None:
        for size in model_only_batch_sizes:
            inputs = model.model_only_inputs(size, sequence_length)
            runner(inputs)
            synchronise()
            began = time.perf_counter()
            for _ in range(repeats):
                runner(inputs)
            synchronise()
            figures[f"model_sequences_per_s_b{size}"] = size * repeats / (time.perf_counter() - began)
    figures["peak_memory_mb"] = peak_memory_mb()
    return figures
