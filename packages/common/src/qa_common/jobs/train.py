"""The one training job of every architecture: train, calibrate, evaluate, export, benchmark, log, register.

    squad-qa train bert_qa --preset tiny --epochs 1

Data is read and validated before any run exists, so bad input leaves no run behind. Training runs on HF
``Trainer`` (mixed precision on GPU, checkpoints, resume, progress bars, seeds, several processes under torchrun:
see ``qa_common.distributed``). A job killed mid-training and started again with the same ``output_dir`` resumes
from its last checkpoint into the same MLflow run.
The model is registered only after everything it is registered with exists. A write that fails for lack of
room or permission (checkpoints, the saved model, the artifact store) raises StorageError naming where.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from qa_common import distributed
from qa_common.adapter import Adapter, ModelInfo, adapter_class_path, get_adapter, load_model
from qa_common.config import ConfigError, build_config, config_to_dict, split_overrides
from qa_common.data.examples import SquadExample
from qa_common.data.negatives import make_perturbed_negatives, make_synthetic_negatives
from qa_common.data.readers import LoadedSquad, load_squad, split_by_article
from qa_common.jobs.benchmark import benchmark_model, directory_size_bytes, hardware_description
from qa_common.jobs.evaluate import DEFAULT_NO_ANSWER_THRESHOLD, calibrate_threshold, evaluate, score_table
from qa_common.scoring import THRESHOLD_RULES

REPO_SAMPLE = Path("data/sample")
# How writers that do not raise OSError say the disk is full or the path unwritable: safetensors ("I/O error:
# File too large (os error 27)") and torch.save ("PytorchStreamWriter failed writing file").
STORAGE_FAILURE = re.compile(r"os error \d+|no space left|file too large|disk quota|read-only file system|"
                             r"permission denied|not a directory|failed writing file|file write failed",
                             re.IGNORECASE)


class StorageError(OSError):
    """A write the job needs failed (a full disk, an unwritable directory or artifact store); says where."""


def _storage_failure(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a failed write rather than a bug."""
    while error is not None:
        if isinstance(error, OSError) or STORAGE_FAILURE.search(str(error)):
            return True
        error = error.__cause__ or error.__context__
    return False


@contextmanager
def writing(where: str, *, inside: str | None = None) -> Iterator[None]:
    """Re-raise a failed write inside the block as a one-line StorageError: cannot write ``where``: why.

    With ``inside``, only a failure raised within the function of that name counts as that write.
    """
    try:
        yield
    except StorageError:
        raise
    except Exception as error:
        raised_in = {frame.name for frame in traceback.extract_tb(error.__traceback__)}
        if not _storage_failure(error) or (inside and inside not in raised_in):
            raise
        why = " ".join(f"{type(error).__name__}: {error}".split())
        raise StorageError(f"cannot write {where}: {why}") from error


@dataclass
class JobConfig:
    """Settings of the shared job; architecture settings live in each adapter's own config."""

    train_data: str = str(REPO_SAMPLE / "train-v2.0-sample.json")
    eval_data: str = str(REPO_SAMPLE / "validation-v2.0-sample.json")
    calibration_data: str | None = None
    calibration_articles: int = 3
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    skip_invalid: bool = False
    synthetic_negatives: float = 0.0
    perturbed_negatives: float = 0.0
    epochs: float = 3.0
    max_steps: int = -1
    learning_rate: float = 5e-5
    batch_size: int = 32
    eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    lr_scheduler: str = "linear"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 42
    dataloader_workers: int = 0
    # Speed of the training loop (README: Training speed). auto: AdamW with its fused CUDA kernel on a GPU
    # (the same update, one kernel per step instead of several per parameter), torch's AdamW on a CPU.
    optim: str = "auto"
    group_by_length: bool = False
    gradient_checkpointing: bool = False
    torch_compile: bool = False
    torch_compile_mode: str | None = None
    save_steps: int = 200
    logging_steps: int = 10
    output_dir: str | None = None
    resume: bool = True
    experiment: str = "squad-qa"
    run_name: str | None = None
    threshold_metric: Literal["f1", "exact"] = "exact"
    threshold_rule: Literal["best", "one-se"] = "one-se"
    register: bool = True
    registered_model: str = "squad-qa"
    promote: bool = True
    export_onnx: bool = True
    benchmark: bool = True
    benchmark_examples: int = 100
    system_metrics: bool = True


@dataclass
class JobData:
    train: list[SquadExample]
    calibration: list[SquadExample]
    evaluation: list[SquadExample]
    calibration_source: str
    skipped: int


def _sources(sources: str) -> list[str]:
    return [part.strip() for part in sources.split(",") if part.strip()]


def _load_many(sources: str | list[str], job: JobConfig) -> tuple[list[SquadExample], int]:
    examples: list[SquadExample] = []
    skipped = 0
    for source in _sources(sources) if isinstance(sources, str) else sources:
        loaded: LoadedSquad = load_squad(source, skip_invalid=job.skip_invalid)
        if loaded.num_skipped:
            print(f"{source}: skipped {loaded.num_skipped} invalid record(s)", file=sys.stderr)
        examples.extend(loaded.examples)
        skipped += loaded.num_skipped
    return examples, skipped


def load_job_data(job: JobConfig) -> JobData:
    """Read and validate every dataset; the calibration set never comes from the evaluation data.

    Without ``calibration_data``, ``calibration_articles`` whole articles of the first training source are
    held out for calibration (the first source should be SQuAD 2.0-style, with unanswerable questions).
    """
    first, *others = _sources(job.train_data)
    train, skipped = _load_many([first], job)
    evaluation, eval_skipped = _load_many(job.eval_data, job)
    if job.calibration_data:
        calibration, calibration_skipped = _load_many(job.calibration_data, job)
        calibration_source = job.calibration_data
    elif job.calibration_articles > 0:
        train, calibration = split_by_article(train, job.calibration_articles, job.seed)
        calibration_skipped = 0
        calibration_source = f"{job.calibration_articles} articles of {Path(first).name} held out (seed {job.seed})"
    else:
        calibration, calibration_skipped, calibration_source = [], 0, "none"
    more_train, more_skipped = _load_many(others, job)
    train, skipped = train + more_train, skipped + more_skipped
    # Negatives are made from training questions and paragraphs only, after the calibration split.
    train = (train + make_synthetic_negatives(train, job.synthetic_negatives, job.seed)
             + make_perturbed_negatives(train, job.perturbed_negatives, job.seed))
    calibration_ids = {example.id for example in calibration}
    for name, others_ in (("evaluation", evaluation), ("training", train)):
        overlap = calibration_ids & {example.id for example in others_}
        if overlap:
            raise ValueError(f"calibration data shares {len(overlap)} question id(s) with the {name} data; "
                             "the no-answer threshold must be chosen on questions the model neither trains "
                             "nor is evaluated on")
    if job.max_train_examples:
        train = train[: job.max_train_examples]
    if job.max_eval_examples:
        evaluation = evaluation[: job.max_eval_examples]
    return JobData(train, calibration, evaluation, calibration_source, skipped + eval_skipped + calibration_skipped)


def examples_frame(examples: list[SquadExample]) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [e.id for e in examples],
        "title": [e.title for e in examples],
        "question": [e.question for e in examples],
        "context": [e.context for e in examples],
        "answers": [json.dumps([a.text for a in e.answers]) for e in examples],
    })


def _precision_flags(precision: str) -> dict[str, bool]:
    import torch

    if precision == "auto":
        cuda = torch.cuda.is_available()
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else ("fp16" if cuda else "fp32")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def _speed_arguments(job: JobConfig, compile_module: bool = True) -> dict[str, Any]:
    """TrainingArguments of the loop's speed settings: optimizer, length grouping, checkpointing, compile (of the
    whole module by the Trainer, unless ``compile_module`` is False: the module compiled its own regions)."""
    import torch
    from transformers import TrainingArguments

    optim = job.optim
    if optim == "auto":
        optim = "adamw_torch_fused" if torch.cuda.is_available() else "adamw_torch"
    arguments: dict[str, Any] = {"optim": optim, "gradient_checkpointing": job.gradient_checkpointing,
                                 "torch_compile": job.torch_compile and compile_module}
    if job.torch_compile_mode and compile_module:
        arguments["torch_compile_mode"] = job.torch_compile_mode
    if job.dataloader_workers > 0:
        arguments["dataloader_persistent_workers"] = True
    if job.group_by_length:
        # transformers 5.x names it a sampling strategy; 4.x had a flag.
        names = {field.name for field in dataclasses.fields(TrainingArguments)}
        if "train_sampling_strategy" in names:
            arguments["train_sampling_strategy"] = "group_by_length"
        else:
            arguments["group_by_length"] = True
    return arguments


def _trainer_state_step(checkpoint: Path) -> int | None:
    """The global step in ``checkpoint``'s trainer_state.json, or None when the file is missing or cut short."""
    try:
        return int(json.loads((checkpoint / "trainer_state.json").read_text())["global_step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_complete_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest checkpoint the Trainer finished writing, or None.

    Trainer writes ``trainer_state.json`` last: a job killed while saving leaves a checkpoint without it (or
    with it cut short), which cannot be resumed from (and ``get_last_checkpoint`` would pick it).
    """
    complete = [path for path in Path(checkpoint_dir).glob("checkpoint-*")
                if path.name.rpartition("-")[2].isdigit() and _trainer_state_step(path) is not None]
    return str(max(complete, key=lambda path: int(path.name.rpartition("-")[2]))) if complete else None


def train_model(model, data: JobData, job: JobConfig, checkpoint_dir: Path, callbacks: list) -> dict[str, float]:
    """Fine-tune ``model.module`` with HF Trainer, resuming from the newest checkpoint in ``checkpoint_dir``."""
    from transformers import Trainer, TrainingArguments

    module = model.training_module()
    # A training module that compiles its own regions (bert_qa's packed trainer compiles its layers: the packing
    # around them has data-dependent shapes) does so in place of the Trainer compiling it whole.
    regional = job.torch_compile and callable(getattr(module, "compile_layers", None))
    if regional:
        module.compile_layers(job.torch_compile_mode)
    arguments = TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=job.epochs,
        max_steps=job.max_steps,
        per_device_train_batch_size=distributed.per_process_batch_size(job.batch_size),
        gradient_accumulation_steps=job.gradient_accumulation_steps,
        learning_rate=job.learning_rate,
        weight_decay=job.weight_decay,
        warmup_steps=job.warmup_ratio,
        lr_scheduler_type=job.lr_scheduler,
        logging_steps=job.logging_steps,
        save_strategy="steps",
        save_steps=job.save_steps,
        save_total_limit=2,
        seed=job.seed,
        data_seed=job.seed,
        dataloader_num_workers=job.dataloader_workers,
        report_to="none",
        remove_unused_columns=False,
        **_precision_flags(job.precision),
        **_speed_arguments(job, compile_module=not regional),
        **distributed.trainer_arguments(),
    )
    trainer = Trainer(
        model=module,
        args=arguments,
        train_dataset=model.training_dataset(data.train),
        data_collator=model.data_collator(),
        callbacks=[*model.training_callbacks(), *callbacks],  # the model's first: they may add to the logs
    )
    # The main process decided whether to resume (and cleared what it would not resume from); the others follow it.
    last = distributed.from_main(last_complete_checkpoint(checkpoint_dir) if distributed.is_main() else None)
    resumed_step = _trainer_state_step(Path(last)) if last else 0
    if last and distributed.is_main():
        print(f"resuming from {last}", file=sys.stderr)
    # A failed checkpoint write: the Trainer names neither the file nor the cause.
    with writing(f"checkpoints to {checkpoint_dir}", inside="_save_checkpoint"):
        output = trainer.train(resume_from_checkpoint=last)
    distributed.finish_training()
    finished = model.finish_training()
    model.module.eval()
    # After a resume, Trainer divides this attempt's loss sum by all the run's steps and credits this attempt's
    # time with all the run's features; scaled by the attempt's share of the steps, both describe this attempt.
    share = (output.global_step - resumed_step) / output.global_step if output.global_step else 1.0
    return {
        "train_runtime_s": output.metrics.get("train_runtime", 0.0),
        "train_features_per_s": output.metrics.get("train_samples_per_second", 0.0) * share,
        "train_loss_mean": output.metrics.get("train_loss", float("nan")) / share if share else float("nan"),
        "train_features": float(len(trainer.train_dataset)),
        "train_steps": float(output.global_step),
        **finished,
    }


def _save(model, adapter: Adapter, model_config, directory: Path, threshold: float, threshold_source: str) -> None:
    """Write the model and its info to a fresh directory, atomically replacing an older one."""
    staging = directory.with_name(directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save(staging)
    ModelInfo(adapter=adapter.name, adapter_class=adapter_class_path(adapter), config=config_to_dict(model_config),
              no_answer_threshold=threshold, threshold_source=threshold_source,
              runtimes=["torch"]).write(staging)
    shutil.rmtree(directory, ignore_errors=True)
    staging.replace(directory)


def job_and_model_configs(adapter: Adapter, preset: str | None, overrides: dict[str, Any]) -> tuple[JobConfig, Any]:
    """Split ``--key value`` settings between the job and the architecture's config; unknown keys are an error."""
    model_keys = sorted(field.name for field in dataclasses.fields(adapter.config_class))
    job_keys = [field.name for field in dataclasses.fields(JobConfig)]
    unknown = sorted(set(overrides) - set(model_keys) - set(job_keys))
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(unknown)}; job settings: {', '.join(job_keys)}; "
                          f"{adapter.name} settings: {', '.join(model_keys)}")
    job_overrides, model_overrides = split_overrides(JobConfig, overrides)
    return build_config(JobConfig, job_overrides), adapter.config(preset or adapter.default_preset, model_overrides)


def run_job(adapter_name: str, preset: str | None, overrides: dict[str, Any]) -> dict[str, Any] | None:
    """Run the whole job for one architecture and preset; returns the run id, metrics and registration.

    Under torchrun or accelerate launch every process calls this; all but the main one only train (their share
    of each batch) and return None.
    """
    from qa_common.tracking import models as tracked_models
    from qa_common.tracking import runs
    from qa_common.tracking.faults import fault_point, step_fault_points

    adapter = get_adapter(adapter_name)
    job, model_config = job_and_model_configs(adapter, preset, overrides)
    distributed.per_process_batch_size(job.batch_size)  # a batch the processes cannot share fails before any work
    distributed.start()
    preset = preset or adapter.default_preset
    data = load_job_data(job)
    # Built and prepared before the run starts: a bad model name, size or embedding file fails without leaving
    # a run behind.
    model = adapter.build(model_config)
    prepared = model.prepare(data.train)

    output_dir = Path(job.output_dir or f"outputs/{adapter_name}-{preset}")
    checkpoint_dir, model_dir = output_dir / "checkpoints", output_dir / "model"
    if not distributed.is_main():
        # The main process alone owns the MLflow run, the job state and the work after training.
        train_model(model, data, job, checkpoint_dir, [step_fault_points()])
        return None
    runs.configure_tracking()
    state = runs.read_job_state(output_dir)
    resume_run_id = None
    has_checkpoint = last_complete_checkpoint(checkpoint_dir) is not None
    # A run left RUNNING was killed (a failure marks it FAILED): it is resumed even when the kill came before its
    # first checkpoint, training then starts over inside it, rather than being left RUNNING for ever beside a
    # new run. A FAILED run is resumed only from a checkpoint.
    status = runs.run_status(state["run_id"]) if job.resume and state.get("status") == "training" else None
    if status == "RUNNING" or (status is not None and has_checkpoint):
        resume_run_id = state["run_id"]
        print(f"resuming MLflow run {resume_run_id}", file=sys.stderr)
    if resume_run_id is None or not has_checkpoint:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # a kill while writing the first one leaves a part

    tags = {"adapter": adapter_name, "preset": preset, "hardware": hardware_description(),
            "processes": str(distributed.world_size())}
    with runs.job_run(job.experiment, run_name=job.run_name or f"{adapter_name}-{preset}",
                      resume_run_id=resume_run_id, tags=tags, system_metrics=job.system_metrics) as run_id:
        runs.write_job_state(output_dir, status="training", run_id=run_id)
        artifacts = f"to the artifact store {runs.artifact_uri()}"
        with writing(artifacts):  # before training: an unwritable store fails the job now, not hours later
            runs.log_json({"adapter": adapter_name, "preset": preset, "job": config_to_dict(job),
                           "model": config_to_dict(model_config)}, "settings.json")
        runs.log_params({"adapter": adapter_name, "preset": preset, **config_to_dict(job),
                         **{f"model.{k}": v for k, v in config_to_dict(model_config).items()},
                         "calibration_source": data.calibration_source, "skipped_records": data.skipped},
                        resuming=resume_run_id is not None)
        runs.log_dataset(examples_frame(data.train), source=job.train_data, name="train", context="training")
        if data.calibration:
            runs.log_dataset(examples_frame(data.calibration), source=data.calibration_source,
                             name="calibration", context="calibration")
        eval_digest = runs.log_dataset(examples_frame(data.evaluation), source=job.eval_data, name="evaluation",
                                       context="evaluation")
        runs.set_tags({"eval_data_digest": eval_digest})

        counts = model.parameter_counts()
        runs.log_metrics({"parameters_total": counts.total, "parameters_trainable": counts.trainable, **prepared})
        training = train_model(model, data, job, checkpoint_dir, [runs.MlflowStepLogger(), step_fault_points()])
        runs.log_metrics(training)

        fault_point("calibrate")
        if data.calibration:
            threshold, calibration_scores = calibrate_threshold(
                model, data.calibration, metric=job.threshold_metric, rule=job.threshold_rule,
                batch_size=job.eval_batch_size)
            threshold_source = (f"{THRESHOLD_RULES[job.threshold_rule]} {job.threshold_metric} on "
                                f"{data.calibration_source}")
            runs.log_metrics({f"calibration_{k}": v for k, v in calibration_scores.items()
                              if k in ("exact", "f1", "HasAns_f1", "NoAns_exact")})
        else:
            threshold, threshold_source = DEFAULT_NO_ANSWER_THRESHOLD, "default (no calibration data)"
        runs.log_metrics({"no_answer_threshold": threshold})
        runs.set_tags({"threshold_source": threshold_source})

        fault_point("evaluate")
        result = evaluate(model, data.evaluation, threshold, batch_size=job.eval_batch_size, progress=True)
        metrics = result.metrics()
        runs.log_metrics(metrics)
        with writing(artifacts):
            # scores.json = squad-qa score DATA predictions.json --na-prob-file na_probs.json --na-prob-thresh T
            runs.log_json({qid: p.text for qid, p in result.raw.items()}, "evaluation/predictions.json")
            runs.log_json(result.predictions, "evaluation/served_predictions.json")
            runs.log_json(result.no_answer_probabilities, "evaluation/na_probs.json")
            runs.log_json(result.scores, "evaluation/scores.json")
            runs.log_json(result.answer_all_scores, "evaluation/scores_answer_all.json")

        fault_point("save_model")
        with writing(f"the model to {model_dir}"):
            _save(model, adapter, model_config, model_dir, threshold, threshold_source)
        counts = model.parameter_counts()
        # Counted again after saving: the saved model's parameters (an SMP student's mask scores are gone).
        sizes = {"parameters_total": counts.total, "parameters_non_zero": counts.non_zero,
                 "model_size_bytes": directory_size_bytes(model_dir),
                 **model.saved_figures(model_dir)}
        runtimes = ["torch"]
        exporting = job.export_onnx and "onnx" in adapter.supported_runtimes()
        refusal = model.onnx_export_refusal() if exporting else None
        if refusal:  # a variant of an exportable architecture that has no faithful ONNX form (t5_qa's INT8, say)
            print(f"not exported to ONNX: {refusal}", file=sys.stderr)
            runs.set_tags({"onnx_export_refused": refusal})
        elif exporting:
            parity = model.export_onnx(model_dir, data.evaluation[:64])
            runs.log_metrics(parity)
            if parity["onnx_max_abs_logit_diff"] > 1e-3:
                raise RuntimeError(f"ONNX export disagrees with PyTorch: max |logit diff| "
                                   f"{parity['onnx_max_abs_logit_diff']:.2e} > 1e-3")
            runtimes.append("onnx")
            info = ModelInfo.read(model_dir)
            info.runtimes = runtimes
            info.write(model_dir)
        runs.log_metrics(sizes)

        if job.benchmark:
            bench_examples = data.evaluation[: job.benchmark_examples]
            for runtime in runtimes:
                bench_model = model if runtime == "torch" else load_model(model_dir, runtime=runtime)[0]
                figures = benchmark_model(bench_model, bench_examples, batch_size=job.eval_batch_size)
                runs.log_metrics({f"bench_{runtime}_{key}": value for key, value in figures.items()})

        example_input = [{"question": e.question, "context": e.context} for e in data.evaluation[:2]]
        fault_point("log_model")
        with writing(f"the model {artifacts}"):
            model_uri = tracked_models.log_qa_model(model_dir, name="model",
                                                    adapter_class=adapter_class_path(adapter),
                                                    input_example=example_input)
            if "onnx" in runtimes:
                fault_point("log_model_onnx")
                tracked_models.log_qa_model(model_dir, name="model_onnx", adapter_class=adapter_class_path(adapter),
                                            runtime="onnx", input_example=example_input)
        registration = None
        if job.register:
            fault_point("register")
            # An earlier attempt of this run, killed after logging its model, may have registered it (it is
            # kept) or begun to (that half-made version is deleted).
            version = tracked_models.finished_version_of_run(job.registered_model, run_id) if resume_run_id else None
            if version is None:
                version = tracked_models.register(model_uri, job.registered_model, tracked_models.version_tags(
                    metrics, eval_data_digest=eval_digest, adapter=adapter_name, preset=preset,
                    no_answer_threshold=threshold, runtimes=runtimes))
            registration = {"name": job.registered_model, "version": version}
            if job.promote:
                fault_point("promote")
                decision = tracked_models.promote_if_better(job.registered_model, version)
                registration.update(promoted=decision.promoted, reason=decision.reason)
            runs.set_tags({"registered_version": version})
        fault_point("finish")
        runs.write_job_state(output_dir, status="done", run_id=run_id)

    print(score_table({"calibrated": result.scores, "answer everything": result.answer_all_scores},
                      ["exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "total"]))
    print(f"no-answer threshold {threshold:.4g} ({threshold_source})")
    if registration:
        print(f"registered {registration['name']} version {registration['version']}"
              + (f"; {'promoted to champion' if registration.get('promoted') else 'not promoted'}: "
                 f"{registration.get('reason')}" if "reason" in registration else ""))
    print(f"MLflow run {run_id}; model {model_uri}")
    return {"run_id": run_id, "metrics": metrics, "registration": registration, "model_uri": model_uri,
            "model_dir": str(model_dir), "threshold": threshold}
