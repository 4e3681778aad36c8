"""The prompting study: zero- and k-shot SQuAD 2.0 prompts for any transformers causal LM, scored officially and
timed, one MLflow parent run per study and one child run per (model, k).

    squad-qa prompt-eval --models state-spaces/mamba-130m-hf,gpt2 --shots 0,3 --sample-size 1000 \\
        --eval-data ../shared/data/squad/validation-v2.0.json --train-data ../shared/data/squad/train-v2.0.json

Each question of a seeded sample of the evaluation data is asked once per model and k: ``k`` solved examples
from the training data (``qa_common.prompts``: distinct paragraphs, never the question asked or its paragraph),
then its context and question. The model writes greedily until the stop rule (a newline or eos) or
``max_new_tokens``; the answer is the text up to the first newline, and the no-answer text ("I don't know")
means no answer. Scores: the official EM/F1 (HasAns/NoAns) of those answers, and the seed study's looser
accuracy (``qa_common.scoring.answer_in_generation``). Speed (``qa_common.causal_lm``): prompt-processing time
and decode tokens/s at batch 1, after one untimed warm-up generation per model.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qa_common.config import build_config, config_to_dict
from qa_common.data.examples import SquadExample
from qa_common.prompts import (
    DEFAULT_NO_ANSWER_TEXT,
    DEFAULT_TEMPLATE,
    Shot,
    answer_from_generation,
    check_template,
    render_shot,
    shot_pool,
    shots_for,
    split_template,
    stop_token_ids,
)
from qa_common.scoring import answer_in_generation, score_predictions

STUDY_KIND, CHILD_KIND = "prompt-study", "prompt-eval"


@dataclass
class PromptEvalConfig:
    """Settings of one prompting study (lists comma-separated on the command line).

    ``models``: hub names, checkpoint or LoRA adapter directories, squad-qa model directories, run ids or MLflow
    model URIs (``runs:/<id>/model``, ``models:/<name>@<alias>``). ``shots``: the k of each child run.
    ``sample_size``: questions drawn (``seed``) from ``eval_data``; 0 asks them all. Shots come from
    ``train_data``, with contexts of at most ``max_shot_context_words`` words. ``max_prompt_tokens``: a longer
    prompt has its context cut at the end to fit (0: the model's position limit less ``max_new_tokens``, no limit
    for Mamba and RWKV). ``tokenizer``: a tokenizer for every model instead of each model's own.
    """

    models: tuple[str, ...] = ("state-spaces/mamba-130m-hf",)
    shots: tuple[int, ...] = (0, 3)
    eval_data: str = "data/sample/validation-v2.0-sample.json"
    train_data: str = "data/sample/train-v2.0-sample.json"
    sample_size: int = 0
    seed: int = 0
    prompt_template: str = DEFAULT_TEMPLATE
    no_answer_text: str = DEFAULT_NO_ANSWER_TEXT
    max_shot_context_words: int = 120
    max_new_tokens: int = 24
    max_prompt_tokens: int = 0
    tokenizer: str = ""
    dtype: str = "auto"
    device: str = ""
    cpu_threads: int = 0
    experiment: str = "squad-qa-prompting"
    study_name: str = "prompt-study"
    report: bool = True


def check_config(config: PromptEvalConfig) -> None:
    """Refuse settings that cannot work, naming them, before any data or model is read."""
    check_template(config.prompt_template)
    if not config.models or any(not model.strip() for model in config.models):
        raise ValueError("models: give at least one model (comma-separated)")
    if not config.shots or min(config.shots) < 0:
        raise ValueError(f"shots must be whole numbers of at least 0, got {','.join(map(str, config.shots))}")
    for name in ("sample_size", "max_prompt_tokens", "cpu_threads"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be at least 0, got {getattr(config, name)}")
    for name in ("max_new_tokens", "max_shot_context_words"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.dtype not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"dtype must be auto, fp32, bf16 or fp16, got {config.dtype!r}")
    if not config.no_answer_text.strip() or "\n" in config.no_answer_text:
        raise ValueError(f"no_answer_text must be one line of text, got {config.no_answer_text!r}")


def sample_questions(examples: Sequence[SquadExample], size: int, seed: int) -> list[SquadExample]:
    """``size`` questions drawn at random (``seed``) in file order; all of them for size 0."""
    if size == 0:
        return list(examples)
    if size > len(examples):
        raise ValueError(f"sample_size {size} is larger than the {len(examples)} questions of the evaluation data")
    chosen = set(random.Random(seed).sample(range(len(examples)), size))
    return [example for index, example in enumerate(examples) if index in chosen]


def study_shot_pool(train: Sequence[SquadExample], config: PromptEvalConfig) -> list[Shot]:
    """One pool for every model and k: ``max(shots) + 1`` paragraphs, so that leaving out the one being asked
    about still leaves k; a k-shot prompt's examples are the first k that remain (so 3-shot extends 1-shot)."""
    most = max(config.shots)
    limit = config.max_shot_context_words
    return shot_pool(train, most + 1 if most else 0, seed=config.seed, no_answer_text=config.no_answer_text,
                     fits=lambda context: len(context.split()) <= limit)


def position_limit(model) -> int | None:
    """How many positions the model can attend to (None for recurrent models: Mamba, RWKV)."""
    config = model.config
    if config.model_type in ("mamba", "rwkv", "mamba2"):
        return None
    for name in ("n_positions", "max_position_embeddings"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


@dataclass
class Prompt:
    ids: list[int]
    truncated: bool


class PromptBuilder:
    """Token ids of each question's k-shot prompt for one tokenizer: shots and the template before the context, the
    context (cut at its end when the prompt would be too long), the template after it."""

    def __init__(self, tokenizer, config: PromptEvalConfig, pool: Sequence[Shot], max_tokens: int | None):
        self.tokenizer, self.config, self.pool, self.max_tokens = tokenizer, config, list(pool), max_tokens

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def shots(self, example: SquadExample, k: int) -> list[Shot]:
        return shots_for(example, self.pool, k)

    def text(self, example: SquadExample, k: int) -> str:
        before, after = split_template(self.config.prompt_template, example.question.strip())
        head = "".join(render_shot(self.config.prompt_template, shot) for shot in self.shots(example, k))
        return f"{head}{before}{example.context}{after}"

    def build(self, example: SquadExample, k: int) -> Prompt:
        before, after = split_template(self.config.prompt_template, example.question.strip())
        head = self._ids("".join(render_shot(self.config.prompt_template, shot) for shot in self.shots(example, k))
                         + before)
        context, tail = self._ids(example.context), self._ids(after)
        room = None if self.max_tokens is None else self.max_tokens - len(head) - len(tail)
        if room is not None and room < 1:
            raise ValueError(f"question {example.id!r}: {len(head)} tokens of shots and question leave no room for "
                             f"its context within {self.max_tokens} prompt tokens; lower shots or "
                             "max_shot_context_words")
        truncated = room is not None and len(context) > room
        return Prompt([*head, *(context[:room] if truncated else context), *tail], truncated)


@dataclass
class ChildResult:
    metrics: dict[str, float]
    predictions: dict[str, str]
    records: list[dict[str, Any]]


def ask(model, tokenizer, builder: PromptBuilder, examples: Sequence[SquadExample], k: int,
        config: PromptEvalConfig, stop_ids: Sequence[int], *, progress: bool = False) -> ChildResult:
    """Ask every question of ``examples`` with its k-shot prompt; score the answers and time the generations."""
    from qa_common.causal_lm import greedy_generate

    predictions: dict[str, str] = {}
    records = []
    prompt_seconds = decode_seconds = 0.0
    prompt_tokens = decode_tokens = new_tokens = truncated = stopped = 0
    contained = 0
    began = time.perf_counter()
    for number, example in enumerate(examples):
        prompt = builder.build(example, k)
        generation = greedy_generate(model, prompt.ids, stop_ids=stop_ids, max_new_tokens=config.max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(list(generation.token_ids), skip_special_tokens=True)
        answer = answer_from_generation(text, config.no_answer_text)
        predictions[example.id] = answer
        gold = [gold_answer.text for gold_answer in example.answers]
        contained += answer_in_generation(answer, gold)
        prompt_seconds += generation.prompt_seconds
        decode_seconds += generation.decode_seconds
        prompt_tokens += generation.prompt_tokens
        decode_tokens += generation.decode_tokens
        new_tokens += len(generation.token_ids)
        truncated += prompt.truncated
        stopped += generation.stopped
        records.append({"id": example.id, "prompt_tokens": generation.prompt_tokens, "truncated": prompt.truncated,
                        "generation": text, "answer": answer, "gold": gold,
                        "prompt_ms": round(generation.prompt_seconds * 1000, 3),
                        "decode_ms": round(generation.decode_seconds * 1000, 3)})
        if progress and (number + 1) % 50 == 0:
            print(f"  {number + 1}/{len(examples)} questions", file=sys.stderr)
    total = time.perf_counter() - began
    count = len(examples)
    scores = score_predictions(examples, predictions)
    metrics = {key: float(value) for key, value in scores.items()}
    metrics.update({
        "accuracy": 100.0 * contained / count,
        "questions": float(count),
        "prompt_tokens_mean": prompt_tokens / count,
        "prompt_processing_ms_mean": 1000 * prompt_seconds / count,
        "prompt_tokens_per_s": prompt_tokens / prompt_seconds if prompt_seconds else 0.0,
        "decode_tokens_per_s": decode_tokens / decode_seconds if decode_seconds and decode_tokens else 0.0,
        "generate_tokens_per_s": new_tokens / (prompt_seconds + decode_seconds),
        "generated_tokens_mean": new_tokens / count,
        "questions_per_s": count / total,
        "truncated_prompts": float(truncated),
        "stopped_share": stopped / count,
    })
    return ChildResult(metrics=metrics, predictions=predictions, records=records)


def short_name(model: str) -> str:
    """A run name for a model: the last part of its hub name or path."""
    return model.rstrip("/").split("/")[-1] or model


def resolve_models(config: PromptEvalConfig) -> list[tuple[str, str, str | None]]:
    """(as given, what to load, the run it was logged in) for every model, before the study starts: MLflow URIs
    and run ids become directories; a local path that does not exist is an error now, not half-way."""
    from qa_common.causal_lm import check_loadable

    resolved = []
    for model in config.models:
        model = model.strip()
        run_id = None
        location = model
        is_run_id = len(model) == 32 and all(c in "0123456789abcdef" for c in model) and not Path(model).exists()
        if model.startswith(("runs:/", "models:/")) or "://" in model or is_run_id:
            from qa_common.tracking.models import resolve_model_directory

            directory, run_id = resolve_model_directory(f"runs:/{model}/model" if is_run_id else model)
            location = str(directory)
        check_loadable(location)
        resolved.append((model, location, run_id))
    return resolved


def run_prompt_eval(overrides: dict[str, Any], *, progress: bool = True) -> dict[str, Any]:
    """Run the study ``overrides`` describes (keys of ``PromptEvalConfig``); returns the parent run id, the child
    run ids and each child's metrics."""
    from qa_common.causal_lm import greedy_generate, kernel_path, load_causal_lm
    from qa_common.data.readers import load_squad
    from qa_common.tracking import studies

    config = build_config(PromptEvalConfig, overrides)
    check_config(config)
    examples = sample_questions(load_squad(config.eval_data).examples, config.sample_size, config.seed)
    pool = study_shot_pool(load_squad(config.train_data).examples if max(config.shots) else [], config)
    studies.configure_tracking()
    models = resolve_models(config)
    if config.cpu_threads:
        torch.set_num_threads(config.cpu_threads)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    children: dict[str, dict[str, float]] = {}
    child_ids = []
    with studies.study_run(config.experiment, run_name=config.study_name,
                           tags={"squad_qa.kind": STUDY_KIND}) as parent_id:
        studies.log_params({f"study.{key}": value for key, value in config_to_dict(config).items()})
        studies.log_json([shot.__dict__ for shot in pool], "shots.json")
        for given, location, logged_in in models:
            if progress:
                print(f"loading {given}", file=sys.stderr)
            lm = load_causal_lm(location, dtype=config.dtype, device=device, tokenizer=config.tokenizer or None)
            limit = config.max_prompt_tokens or position_limit(lm.module)
            if limit is not None and not config.max_prompt_tokens:
                limit -= config.max_new_tokens
            builder = PromptBuilder(lm.tokenizer, config, pool, limit)
            stop_ids = stop_token_ids(lm.tokenizer)
            path = kernel_path(lm.module)
            # One untimed generation first: the first call of a model pays for allocations and kernel selection.
            greedy_generate(lm.module, builder.build(examples[0], config.shots[0]).ids, stop_ids=[],
                            max_new_tokens=2, min_new_tokens=2, pad_token_id=lm.tokenizer.pad_token_id)
            for k in config.shots:
                name = f"{short_name(given)}-{k}shot"
                tags = {"squad_qa.kind": CHILD_KIND, "model": given, "shots": k, "model_type": lm.model_type,
                        "model_source": lm.source, "code_path": path, "device": str(lm.device),
                        **({"model_run_id": logged_in} if logged_in else {})}
                with studies.child_run(run_name=name, tags=tags) as child_id:
                    studies.log_params({"model": given, "shots": k, "model_type": lm.model_type,
                                        "dtype": str(next(lm.module.parameters()).dtype).replace("torch.", ""),
                                        "parameters_total": lm.parameter_count(), "max_prompt_tokens": limit,
                                        "sample_size": len(examples), "seed": config.seed,
                                        "max_new_tokens": config.max_new_tokens})
                    if progress:
                        print(f"{name}: {len(examples)} questions", file=sys.stderr)
                    result = ask(lm.module, lm.tokenizer, builder, examples, k, config, stop_ids, progress=progress)
                    studies.log_metrics(result.metrics)
                    studies.log_json(result.predictions, "predictions.json")
                    studies.log_text("".join(json.dumps(record) + "\n" for record in result.records),
                                     "generations.jsonl")
                children[name] = result.metrics
                child_ids.append(child_id)
            del lm
    report = None
    if config.report:
        from qa_common.jobs.prompt_report import write_report

        report = write_report(parent_id)
    return {"run_id": parent_id, "child_run_ids": child_ids, "children": children, "report": report}
