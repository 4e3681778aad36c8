"""Side-by-side speed of squad-qa's inference path and what a user would otherwise run, on the same data.

    squad-qa benchmark bert_qa:random-bert-base data/validation-v2.0.json --side-by-side --report-dir out/

In one process, on the same questions and the same weights:

- ``ours``: the extractive path as `InferenceOptions` set it (bf16 weights on a GPU, windows sorted by length in
  token-budget batches, span selection on the device; optionally torch.compile and CUDA graphs);
- ``plain``: the same weights as transformers runs them plainly: bf16, eager SDPA, every window padded to
  max_length in fixed batches, all logits to the CPU and the numpy reference span selection;
- ``pipeline``: transformers' ``pipeline("question-answering")`` (in this process when the installed transformers
  has it, else in a subprocess with another Python or PYTHONPATH; "unavailable" otherwise);
- other architectures (``--architecture``): their own adapter's predict path, end to end.

Figures: model-only sequences/s at a fixed length for several batch sizes, model-only windows/s on the real
windows of the data, end-to-end questions/s (tokenise, model, decode), latency p50/p95 at batch 1, peak memory,
the share of the bf16 FLOP ceiling, and EM/F1 of every path at one decision rule, with the number of questions
whose answers differ from ours. The rule is the pipeline's: spans and the null answer compared by their
probabilities within their window (``span_scores="window_probabilities"`` for ``ours`` and ``plain``), answer
when the best span's beats the null's, answers cut at token offsets (the pipeline with ``align_to_words=False``).
Each path's answers are kept in speed.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qa_common.data.examples import SquadExample
from qa_common.jobs.benchmark import hardware_description, peak_memory_mb, synchronise
from qa_common.scoring import score_predictions

# Dense bf16 tensor-core peak (TFLOP/s, no sparsity) by GPU name, first match wins; --peak-tflops overrides.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0), ("H100", 989.0), ("GH200", 989.0), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0),
    ("L4", 121.0), ("A10", 125.0), ("RTX 4090", 165.0),
)
# The decision rule of every path's EM/F1: answer when the best span's score beats the null score (what the
# pipeline's handle_impossible_answer does), so no path needs a calibrated threshold; scores as the pipeline's.
TIE_THRESHOLD = 0.5
PIPELINE_SPAN_SCORES = "window_probabilities"


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """The bf16 dense peak of ``device_name`` (TFLOP/s), ``override`` when given, None when unknown."""
    if override:
        return float(override)
    for name, peak in PEAK_BF16_TFLOPS:
        if name.lower() in device_name.lower():
            return peak
    return None


def encoder_flops_per_sequence(hidden: int, layers: int, intermediate: int, tokens: int) -> float:
    """Forward FLOPs of a BERT-style encoder with a span head on one sequence of ``tokens`` tokens.

    2 x (matmul weights) x tokens for the projections (Q, K, V, output: 4 h^2; feed-forward: 2 h i; head: 2 h per
    layer stack) + 4 x layers x tokens^2 x h for the attention scores and their weighted sum. bert-base at 384:
    70.7 GFLOP.
    """
    matmul_weights = layers * (4 * hidden * hidden + 2 * hidden * intermediate) + 2 * hidden
    return 2.0 * matmul_weights * tokens + 4.0 * layers * tokens * tokens * hidden


def module_flops(module: Any) -> Callable[[int], float] | None:
    """FLOPs per sequence of a length for a module whose HF config gives encoder sizes, else None."""
    config = getattr(module, "config", None)
    sizes = [getattr(config, name, None) for name in ("hidden_size", "num_hidden_layers", "intermediate_size")]
    if config is None or not all(isinstance(size, int) for size in sizes):
        return None
    return lambda tokens: encoder_flops_per_sequence(sizes[0], sizes[1], sizes[2], tokens)


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def seconds_per_call(function: Callable[[], Any], repeats: int, warmup: int = 2) -> float:
    """Seconds per call of ``function`` after ``warmup`` calls (the device synchronised around the timing)."""
    for _ in range(warmup):
        function()
    synchronise()
    began = time.perf_counter()
    for _ in range(repeats):
        function()
    synchronise()
    return (time.perf_counter() - began) / repeats


def _percentiles(latencies: Sequence[float]) -> dict[str, float]:
    return {"latency_p50_ms": float(np.percentile(latencies, 50) * 1000),
            "latency_p95_ms": float(np.percentile(latencies, 95) * 1000)}


@dataclass
class SpeedSettings:
    """What the side-by-side benchmark measures and how long it spends on each figure."""

    batch_size: int = 64  # end to end, and the plain path's fixed batch
    model_only_batch_sizes: tuple[int, ...] = (1, 32, 256)
    sequence_length: int = 384
    model_only_seconds: float = 2.0  # per batch size: as many repeats as fit, at least 3
    latency_questions: int = 100
    repeats: int = 3  # end-to-end and real-window passes
    peak_tflops: float | None = None
    pipeline: str = "auto"  # auto | off
    pipeline_python: str | None = None  # another Python with a transformers that has the pipeline
    pipeline_pythonpath: str | None = None  # or a directory put first on PYTHONPATH (pip install --target DIR)
    pipeline_batch_size: int = 64
    architecture_questions: int = 200
    plain_batch_size: int = 256  # the plain path's batch on the real windows (model only)


@dataclass
class PathFigures:
    name: str
    figures: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    answers: dict[str, str] | None = None
    no_answer_probabilities: dict[str, float] | None = None


def _answers(raw) -> tuple[dict[str, str], dict[str, float]]:
    texts = {qid: (p.text if p.no_answer_probability <= TIE_THRESHOLD else "") for qid, p in raw.items()}
    return texts, {qid: p.no_answer_probability for qid, p in raw.items()}


def model_only(model, options, settings: SpeedSettings, flops: Callable[[int], float] | None,
               peak: float | None) -> dict[str, float]:
    """Sequences/s of ``model``'s runner on random tokens at the fixed length, per batch size (inputs on the
    device beforehand, no padding)."""
    figures: dict[str, float] = {}
    device = next(model.module.parameters()).device
    for batch_size in settings.model_only_batch_sizes:
        inputs = model.model_only_inputs(batch_size, settings.sequence_length)
        inputs.pop("attention_mask", None)  # all ones: transformers' default, and SDPA's flash kernel
        inputs = {key: torch.as_tensor(value).to(device) for key, value in inputs.items()}
        one = seconds_per_call(lambda inputs=inputs: model.runner.logits_tensors(inputs), repeats=3, warmup=3)
        repeats = max(3, int(settings.model_only_seconds / max(one, 1e-6)))
        seconds = seconds_per_call(lambda inputs=inputs: model.runner.logits_tensors(inputs), repeats=repeats, warmup=1)
        rate = batch_size / seconds
        figures[f"model_seq_per_s_b{batch_size}"] = rate
        if batch_size == 1:
            figures["model_latency_b1_ms"] = seconds * 1000
        if flops and peak:
            figures[f"model_ceiling_share_b{batch_size}"] = rate * flops(settings.sequence_length) / (peak * 1e12)
    return figures


def real_windows(model, features, options, batch_size: int, settings: SpeedSettings,
                 flops: Callable[[int], float] | None, peak: float | None) -> dict[str, float]:
    """Windows/s of the model alone on the data's real windows, batched as ``options`` say and put on the device
    beforehand in the form the runner runs them (`TorchRunner.prepare`: unpadded for a packed module)."""
    device = next(model.module.parameters()).device
    prepare = getattr(model.runner, "prepare", None)
    batches, padded_tokens = [], 0
    for indices, length, rows in model.batch_plan(features.lengths(), batch_size, options):
        batch, _ = model.pack(features, indices, length, rows)
        padded_tokens += batch["input_ids"].size
        if prepare is not None:
            batches.append(prepare(batch))
            continue
        if batch["attention_mask"].all():
            batch.pop("attention_mask")
        batches.append({key: torch.from_numpy(value).to(device) for key, value in batch.items()})

    def run_all() -> None:
        for batch in batches:
            model.runner.logits_tensors(batch)

    seconds = seconds_per_call(run_all, repeats=settings.repeats, warmup=1)
    figures = {"real_windows_per_s": len(features) / seconds, "real_windows": float(len(features)),
               "real_window_mean_tokens": float(features.lengths().mean()),
               "real_padded_tokens_share": float(padded_tokens
                                                 / features.lengths().sum() - 1.0)}
    if flops and peak:
        useful = sum(flops(int(length)) for length in features.lengths())
        figures["real_ceiling_share"] = useful / seconds / (peak * 1e12)
    return figures


def end_to_end(predict: Callable[[Sequence[SquadExample]], Any], examples: Sequence[SquadExample],
               settings: SpeedSettings) -> tuple[dict[str, float], Any]:
    """Questions/s of ``predict`` over all ``examples`` (best of ``repeats`` after a warm-up) and batch-1
    latency over the first ``latency_questions``; returns the figures and the last predictions."""
    predict(examples[: min(len(examples), 64)])
    synchronise()
    best, raw = float("inf"), None
    for _ in range(settings.repeats):
        began = time.perf_counter()
        raw = predict(examples)
        synchronise()
        best = min(best, time.perf_counter() - began)
    latencies = []
    for example in examples[: settings.latency_questions]:  # warm-up: CUDA graphs and compiles of these shapes
        predict([example])
    for example in examples[: settings.latency_questions]:
        began = time.perf_counter()
        predict([example])
        synchronise()
        latencies.append(time.perf_counter() - began)
    return {"questions_per_s": len(examples) / best, **_percentiles(latencies)}, raw


def _score(examples, answers: dict[str, str], probabilities: dict[str, float] | None) -> dict[str, float]:
    scores = score_predictions(examples, answers, probabilities or {qid: 0.0 for qid in answers},
                               no_answer_threshold=1.0 if probabilities is None else TIE_THRESHOLD)
    return {"exact": float(scores["exact"]), "f1": float(scores["f1"])}


def extractive_paths(model, plain_model, examples: Sequence[SquadExample], options, settings: SpeedSettings,
                     peak: float | None) -> list[PathFigures]:
    """``ours`` and ``plain`` of an extractive reader (``plain_model``: the same weights, configured plainly)."""
    from qa_common.extractive import REFERENCE_OPTIONS

    plain_options = replace(REFERENCE_OPTIONS, precision=options.precision, sort_by_length=False,
                            padding="max_length", span_scores=PIPELINE_SPAN_SCORES)
    results = []
    flops = module_flops(model.module)
    features = model.windows(examples, with_labels=False)
    for name, reader, chosen, batch_size, real_batch in (
        ("ours", model, model.inference, settings.batch_size, settings.batch_size),  # as configure_inference set
        ("plain", plain_model, plain_options, settings.batch_size, settings.plain_batch_size),
    ):
        path = PathFigures(name)
        _reset_peak()
        began = time.perf_counter()
        path.figures.update(model_only(reader, chosen, settings, flops, peak))
        path.figures.update(real_windows(reader, features, chosen, real_batch, settings, flops, peak))
        figures, raw = end_to_end(lambda batch, r=reader, o=chosen, b=batch_size: r.predict(batch, batch_size=b,
                                                                                             options=o),
                                  examples, settings)
        path.figures.update(figures)
        tokenise = seconds_per_call(lambda r=reader: r.windows(examples, with_labels=False), repeats=1, warmup=0)
        path.figures["tokenise_questions_per_s"] = len(examples) / tokenise
        path.figures["peak_memory_mb"] = peak_memory_mb()
        path.figures["wall_s"] = time.perf_counter() - began
        path.answers, path.no_answer_probabilities = _answers(raw)
        path.figures.update(_score(examples, path.answers, path.no_answer_probabilities))
        path.notes["options"] = json.dumps({k: v for k, v in vars(chosen).items()}, sort_keys=True)
        results.append(path)
    return results


def pipeline_path(model_dir: Path, examples: Sequence[SquadExample], settings: SpeedSettings,
                  max_length: int, doc_stride: int, dtype: str = "bfloat16") -> PathFigures:
    """transformers' QA pipeline on the same questions, here or in a subprocess, its weights in ``dtype`` on a GPU
    (ours's precision, so answers compare like for like); "unavailable" says why not."""
    from qa_common.jobs import hf_pipeline_baseline

    path = PathFigures("pipeline")
    records = [{"id": e.id, "question": e.question, "context": e.context} for e in examples]
    available, version = hf_pipeline_baseline.pipeline_available()
    result: dict[str, Any]
    if settings.pipeline == "off":
        path.notes["unavailable"] = "not run (--pipeline off)"
        return path
    if available and not (settings.pipeline_python or settings.pipeline_pythonpath):
        _reset_peak()
        result = hf_pipeline_baseline.run_pipeline(str(model_dir), records, batch_size=settings.pipeline_batch_size,
                                                   latency_questions=settings.latency_questions,
                                                   max_seq_len=max_length, doc_stride=doc_stride, dtype=dtype)
    elif settings.pipeline_python or settings.pipeline_pythonpath:
        with tempfile.TemporaryDirectory() as scratch:
            data, out = Path(scratch) / "questions.json", Path(scratch) / "result.json"
            data.write_text(json.dumps(records))
            environment = dict(os.environ)
            if settings.pipeline_pythonpath:
                environment["PYTHONPATH"] = os.pathsep.join(
                    [settings.pipeline_pythonpath] + ([environment["PYTHONPATH"]] if "PYTHONPATH" in environment
                                                      else []))
            command = [settings.pipeline_python or sys.executable, hf_pipeline_baseline.__file__, "--model",
                       str(model_dir), "--data", str(data), "--out", str(out), "--batch-size",
                       str(settings.pipeline_batch_size), "--latency-questions", str(settings.latency_questions),
                       "--max-seq-len", str(max_length), "--doc-stride", str(doc_stride), "--dtype", dtype]
            finished = subprocess.run(command, env=environment, capture_output=True, text=True)
            if finished.returncode != 0 or not out.exists():
                path.notes["unavailable"] = (f"pipeline subprocess failed (exit {finished.returncode}): "
                                             + " ".join(finished.stderr.strip().splitlines()[-3:])[:500])
                return path
            result = json.loads(out.read_text())
            path.notes["command"] = " ".join(command[:2]) + (f" (PYTHONPATH={settings.pipeline_pythonpath})"
                                                            if settings.pipeline_pythonpath else "")
    else:
        path.notes["unavailable"] = (f"no question-answering pipeline in transformers {version} (removed in 5.3); "
                                     "give --pipeline-python or --pipeline-pythonpath with transformers <= 5.2")
        return path
    if "unavailable" in result:
        path.notes["unavailable"] = result["unavailable"]
        return path
    path.answers = result.pop("answers")
    for key in ("transformers", "dtype", "attention"):
        if key in result:
            path.notes[key] = str(result.pop(key))
    path.figures.update({key: float(value) for key, value in result.items() if isinstance(value, (int, float))})
    path.figures.update(_score(examples, path.answers, None))
    return path


def architecture_path(spec: str, examples: Sequence[SquadExample], options, settings: SpeedSettings) -> PathFigures:
    """Another architecture's own predict path end to end (``spec``: ``adapter:preset[:json overrides]``)."""
    from qa_common.adapter import get_adapter

    adapter_name, preset, overrides = parse_model_spec(spec)
    adapter = get_adapter(adapter_name)
    model = adapter.build(adapter.config(preset, overrides))
    model.prepare(list(examples))  # a vocabulary where the reader needs one (speed only: the data's own words)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    path = PathFigures(f"{adapter_name}:{preset}")
    try:
        applied = model.configure_inference(options)
    except Exception as error:  # noqa: BLE001 - e.g. a recurrent reader without bf16 kernels: keep fp32
        applied = {"precision": f"as built ({type(error).__name__})"}
    path.notes["applied"] = json.dumps(applied)
    chosen = examples[: settings.architecture_questions]
    _reset_peak()
    figures, raw = end_to_end(lambda batch: model.predict(batch, batch_size=settings.batch_size), chosen,
                              replace(settings, latency_questions=min(settings.latency_questions, 8)))
    path.figures.update(figures)
    path.figures["peak_memory_mb"] = peak_memory_mb()
    path.figures["questions"] = float(len(chosen))
    path.figures["parameters"] = float(model.parameter_counts().total)
    path.answers, path.no_answer_probabilities = _answers(raw)
    path.figures.update(_score(chosen, path.answers, path.no_answer_probabilities))
    return path


def parse_model_spec(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``adapter:preset`` or ``adapter:preset:{"key": value, ...}`` into its parts."""
    adapter_name, _, rest = spec.partition(":")
    preset, _, overrides = rest.partition(":")
    return adapter_name, preset, (json.loads(overrides) if overrides else {})


def is_model_spec(spec: str) -> bool:
    """Whether ``spec`` names an installed adapter and a preset rather than a model directory or URI."""
    from qa_common.adapter import available_adapters

    name, _, rest = spec.partition(":")
    return bool(rest) and name in available_adapters() and not rest.startswith("/")


def differing(reference: dict[str, str] | None, other: dict[str, str] | None) -> int | None:
    if reference is None or other is None:
        return None
    return sum(reference[qid] != other.get(qid) for qid in reference)


def markdown_report(result: dict[str, Any]) -> str:
    """The report: what ran where, then one table of figures per path."""
    lines = [f"# squad-qa side-by-side speed: {result['model']}", "",
             f"- hardware: {result['hardware']} (torch {result['torch']}, transformers {result['transformers']})",
             f"- commit: {result['commit']}",
             f"- command: `{result['command']}`",
             f"- data: {result['data']} ({result['questions']} questions, {result['windows']} windows of "
             f"{result['max_length']} tokens at most, mean {result['window_mean_tokens']:.0f})",
             f"- bf16 peak used for the ceiling share: {result['peak_tflops']} TFLOP/s; FLOPs per sequence at "
             f"{result['sequence_length']}: {result['flops_per_sequence'] or 'n/a'}",
             "- EM/F1 of every path at one rule, the QA pipeline's: spans and the null answer compared by their "
             "probabilities within their window; answer when the best span beats the null", ""]
    keys = ["model_seq_per_s_b1", "model_latency_b1_ms", *[f"model_seq_per_s_b{b}" for b in result["batch_sizes"]
                                                          if b != 1],
            *[f"model_ceiling_share_b{b}" for b in result["batch_sizes"] if b != 1],
            "real_windows_per_s", "real_ceiling_share", "real_padded_tokens_share", "questions_per_s",
            "tokenise_questions_per_s", "latency_p50_ms", "latency_p95_ms", "peak_memory_mb", "exact", "f1",
            "answers_differing_from_ours"]
    paths = result["paths"]
    lines.append("| figure | " + " | ".join(p["name"] for p in paths) + " |")
    lines.append("| --- | " + " | ".join("---" for _ in paths) + " |")
    for key in keys:
        if not any(key in p["figures"] for p in paths):
            continue
        cells = []
        for p in paths:
            value = p["figures"].get(key)
            if value is None:
                cells.append("")
            elif "share" in key:
                cells.append(f"{value:.1%}")
            elif abs(value) >= 100:
                cells.append(f"{value:,.0f}")
            else:
                cells.append(f"{value:.2f}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    notes = [(p["name"], key, value) for p in paths for key, value in p["notes"].items()]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {name} {key}: {value}" for name, key, value in notes]
    for name, key in (("ours", "questions_per_s"),):
        ours = next((p for p in paths if p["name"] == name), None)
        pipe = next((p for p in paths if p["name"] == "pipeline"), None)
        if ours and pipe and key in pipe["figures"]:
            lines += ["", f"Ours / pipeline end to end: {ours['figures'][key] / pipe['figures'][key]:.1f}x"]
    return "\n".join(lines) + "\n"


def run_side_by_side(model_spec: str, data: str, *, settings: SpeedSettings, options, report_dir: Path,
                     commit: str, command: str, architectures: Sequence[str] = (), max_examples: int = 0,
                     experiment: str | None = "squad-qa-speed") -> dict[str, Any]:
    """Measure every path, write ``speed.json`` and ``speed.md`` to ``report_dir``, log them to MLflow."""
    import transformers

    from qa_common.adapter import load_model
    from qa_common.data.readers import load_squad

    examples = load_squad(data).examples
    if max_examples:
        examples = examples[:max_examples]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = peak_tflops(hardware_description(), settings.peak_tflops)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        if is_model_spec(model_spec):
            from qa_common.adapter import get_adapter

            adapter_name, preset, overrides = parse_model_spec(model_spec)
            adapter = get_adapter(adapter_name)
            built = adapter.build(adapter.config(preset, overrides))
            directory = Path(scratch) / "model"
            directory.mkdir()
            built.save(directory)  # both paths (and the pipeline) load these very weights
            from qa_common.adapter import ModelInfo, adapter_class_path
            from qa_common.config import config_to_dict

            ModelInfo(adapter=adapter.name, adapter_class=adapter_class_path(adapter),
                      config=config_to_dict(built.config)).write(directory)
            del built
        else:
            from qa_common.tracking.models import resolve_model_directory
            from qa_common.tracking.runs import configure_tracking

            configure_tracking()
            directory, _ = resolve_model_directory(model_spec)
        model, _ = load_model(directory)
        model.to(device)
        options = replace(options, span_scores=PIPELINE_SPAN_SCORES)
        applied = model.configure_inference(options)
        plain, _ = load_model(directory)
        plain.to(device)
        from qa_common.extractive import InferenceOptions

        plain.configure_inference(InferenceOptions(precision=options.precision, packed=False))
        paths = extractive_paths(model, plain, examples, options, settings, peak)
        paths[0].notes["applied"] = json.dumps(applied)
        features = model.windows(examples, with_labels=False)
        s = model.settings
        flops = module_flops(model.module)
        del model, plain
        _reset_peak()
        dtype = {"fp32": "float32", "fp16": "float16"}.get(applied.get("precision", ""), "bfloat16")
        paths.append(pipeline_path(directory, examples, settings, s.max_length, s.doc_stride, dtype))
    for spec in architectures:
        try:
            paths.append(architecture_path(spec, examples, options, settings))
        except Exception as error:  # noqa: BLE001 - one architecture failing leaves the others' rows
            failed = PathFigures(spec)
            failed.notes["failed"] = f"{type(error).__name__}: {str(error)[:300]}"
            paths.append(failed)
    ours = paths[0].answers
    for path in paths:
        count = differing(ours, path.answers) if path.name in ("ours", "plain", "pipeline") else None
        if count is not None:
            path.figures["answers_differing_from_ours"] = float(count)
    result = {
        "model": model_spec, "data": data, "questions": len(examples), "windows": len(features),
        "window_mean_tokens": float(features.lengths().mean()), "max_length": s.max_length,
        "hardware": hardware_description(), "torch": torch.__version__, "transformers": transformers.__version__,
        "commit": commit, "command": command, "peak_tflops": peak, "sequence_length": settings.sequence_length,
        "flops_per_sequence": flops(settings.sequence_length) if flops else None,
        "batch_sizes": list(settings.model_only_batch_sizes), "settings": vars(settings),
        "paths": [{"name": p.name, "figures": p.figures, "notes": p.notes,
                   **({"answers": p.answers} if p.answers is not None else {})} for p in paths],
    }
    (report_dir / "speed.json").write_text(json.dumps(result, indent=1, default=str))
    (report_dir / "speed.md").write_text(markdown_report(result))
    if experiment:
        try:
            from qa_common.tracking.runs import log_speed_run

            result["mlflow_run_id"] = log_speed_run(experiment, result, report_dir)
        except Exception as error:  # noqa: BLE001 - the figures are on disk whatever the store does
            print(f"not logged to MLflow: {type(error).__name__}: {error}", file=sys.stderr)
    return result


def git_commit() -> str:
    """The checked-out commit (with "+dirty" when the tree has changes), or "unknown" outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("SQUAD_QA_COMMIT", "unknown")
