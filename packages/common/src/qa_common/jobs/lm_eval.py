"""lm-evaluation-harness tasks on any causal LM the prompting study takes, as one MLflow run.

    squad-qa lm-eval gpt2 --tasks squad_qa_v2 --eval-data ../shared/data/squad/validation-v2.0.json --num-fewshot 3
    squad-qa lm-eval runs:/<run id>/model --tasks squad_qa_v2,lambada_openai --limit 200

The model is loaded by ``qa_common.causal_lm`` (hub name, checkpoint, LoRA adapter or squad-qa directory, MLflow
URI) and handed to lm-eval's ``HFLM`` already built, so random tiny models and local checkpoints run offline.
``squad_qa_v2`` is this package's offline SQuAD 2.0 task (``qa_common/lm_eval_tasks``): it reads
``eval_data``/``train_data`` and scores with squad-qa's official scorer. lm-eval is an optional dependency
(``pip install 'squad-qa-common[lm-eval]'``), imported only here.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa_common.config import build_config, config_to_dict

TASKS_DIRECTORY = Path(__file__).resolve().parents[1] / "lm_eval_tasks"
KIND = "lm-eval"


@dataclass
class LmEvalConfig:
    """Settings of one lm-eval run. ``tasks``: lm-eval task names (comma-separated), this package's
    ``squad_qa_v2`` among them; ``eval_data``/``train_data``: the SQuAD files ``squad_qa_v2`` reads; ``limit``:
    at most that many documents per task (0: all); ``num_fewshot``: lm-eval's shots (-1: each task's default);
    ``max_new_tokens``: generation length of generative tasks (0: each task's own)."""

    tasks: tuple[str, ...] = ("squad_qa_v2",)
    eval_data: str = "data/sample/validation-v2.0-sample.json"
    train_data: str = "data/sample/train-v2.0-sample.json"
    num_fewshot: int = -1
    limit: int = 0
    max_new_tokens: int = 0
    batch_size: int = 1
    seed: int = 0
    tokenizer: str = ""
    dtype: str = "auto"
    device: str = ""
    experiment: str = "squad-qa-lm-eval"
    run_name: str = ""


def check_config(config: LmEvalConfig) -> None:
    if not config.tasks:
        raise ValueError("tasks: give at least one lm-eval task")
    if config.num_fewshot < -1:
        raise ValueError(f"num_fewshot must be -1 (the task's default) or at least 0, got {config.num_fewshot}")
    for name in ("limit", "max_new_tokens"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be at least 0, got {getattr(config, name)}")
    if config.batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {config.batch_size}")
    if "squad_qa_v2" in config.tasks:
        for name in ("eval_data", "train_data"):
            if not Path(getattr(config, name)).is_file():
                raise ValueError(f"{name} {getattr(config, name)!r}: no such file (squad_qa_v2 reads SQuAD JSON)")


def import_lm_eval():
    try:
        import lm_eval  # noqa: F401
        from lm_eval.models.huggingface import HFLM  # noqa: F401
    except ImportError as error:
        raise ValueError("lm-eval is not installed: pip install 'squad-qa-common[lm-eval]' "
                         f"({type(error).__name__}: {error})") from error


def harness_model(lm, batch_size: int = 1):
    """lm-eval's ``HFLM`` around an already loaded ``qa_common.causal_lm.CausalLM`` (a LoRA model is merged into
    a copy of its base first: HFLM takes a transformers model)."""
    import copy

    from lm_eval.models.huggingface import HFLM

    module = lm.module
    if hasattr(module, "merge_and_unload"):
        module = copy.deepcopy(module).merge_and_unload()
    return HFLM(pretrained=module, tokenizer=lm.tokenizer, backend="causal", batch_size=batch_size,
                device=str(lm.device))


def metric_name(task: str, key: str) -> str:
    """An lm-eval result key (``exact,none``) as an MLflow metric name (``squad_qa_v2/exact``)."""
    metric, _, filter_name = key.partition(",")
    name = f"{task}/{metric}" if filter_name in ("", "none") else f"{task}/{metric}/{filter_name}"
    return re.sub(r"[^\w\-./ ]", "_", name)


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    metrics = {}
    for task, values in results.get("results", {}).items():
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value):
                metrics[metric_name(task, key)] = float(value)
    return metrics


def evaluate_tasks(lm, config: LmEvalConfig) -> dict[str, Any]:
    """Run ``config.tasks`` on the loaded model; lm-eval's result dict (with ``samples``)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(TASKS_DIRECTORY),
                          metadata={"eval_data": config.eval_data, "train_data": config.train_data})
    return lm_eval.simple_evaluate(
        model=harness_model(lm, config.batch_size), tasks=list(config.tasks), task_manager=manager,
        num_fewshot=None if config.num_fewshot < 0 else config.num_fewshot, limit=config.limit or None,
        gen_kwargs={"max_gen_toks": config.max_new_tokens} if config.max_new_tokens else None, log_samples=True,
        random_seed=config.seed, numpy_random_seed=config.seed, torch_random_seed=config.seed,
        fewshot_random_seed=config.seed, bootstrap_iters=0)


def run_lm_eval(model: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Evaluate ``model`` on the tasks of ``overrides`` (keys of ``LmEvalConfig``) and log one MLflow run: params,
    ``<task>/<metric>`` metrics, ``lm_eval_results.json`` and each task's generations (``samples/<task>.jsonl``)."""
    from qa_common.causal_lm import kernel_path, load_causal_lm
    from qa_common.jobs.prompt_eval import PromptEvalConfig, resolve_models, short_name
    from qa_common.tracking import studies

    config = build_config(LmEvalConfig, overrides)
    check_config(config)
    import_lm_eval()
    studies.configure_tracking()
    ((given, location, logged_in),) = resolve_models(PromptEvalConfig(models=(model,)))
    lm = load_causal_lm(location, dtype=config.dtype, device=config.device or None,
                        tokenizer=config.tokenizer or None)
    results = evaluate_tasks(lm, config)
    metrics = flat_metrics(results)
    samples = results.pop("samples", {})
    tags = {"squad_qa.kind": KIND, "model": given, "model_type": lm.model_type, "model_source": lm.source,
            "code_path": kernel_path(lm.module), **({"model_run_id": logged_in} if logged_in else {})}
    with studies.study_run(config.experiment, run_name=config.run_name or f"lm-eval-{short_name(given)}",
                           tags=tags) as run_id:
        studies.log_params({"model": given, **{f"lm_eval.{key}": value
                                               for key, value in config_to_dict(config).items()}})
        studies.log_metrics(metrics)
        studies.log_text(json.dumps(results, indent=2, default=str), "lm_eval_results.json")
        for task, task_samples in samples.items():
            studies.log_text("".join(json.dumps(sample, default=str) + "\n" for sample in task_samples),
                             f"samples/{task}.jsonl")
    return {"run_id": run_id, "metrics": metrics, "results": results, "samples": samples}
