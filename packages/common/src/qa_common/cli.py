"""The ``squad-qa`` command: train, evaluate, benchmark and score, for every installed architecture.

    squad-qa train bert_qa --preset tiny --epochs 1 --register false
    squad-qa evaluate models:/squad-qa@champion data/sample/validation-v2.0-sample.json
    squad-qa score DATA.json PREDICTIONS.json --na-prob-file NA_PROBS.json
    squad-qa compare --experiment squad-qa
    squad-qa prompt-eval --models gpt2,state-spaces/mamba-130m-hf --shots 0,3 --sample-size 100
    squad-qa lm-eval gpt2 --tasks squad_qa_v2 --limit 50
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from qa_common.cli_score import add_score_parser, run_score


class UsageError(Exception):
    pass


def parse_key_values(tokens: list[str]) -> dict[str, str]:
    """``--some-key value`` pairs (also ``--some_key=value``) into {"some_key": "value"}."""
    values: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--"):
            raise UsageError(f"unexpected argument {token!r}; settings are given as --key value")
        key, has_value, value = token[2:].partition("=")
        if not has_value:
            if index + 1 >= len(tokens):
                raise UsageError(f"--{key} needs a value")
            value = tokens[index + 1]
            index += 1
        # MLproject passes "" for parameters left at their default: the preset's value then stands.
        if value != "":
            values[key.replace("-", "_")] = value
        index += 1
    return values


def _train(args, extra: list[str]) -> int:
    from qa_common import distributed
    from qa_common.jobs.train import run_job

    if args.processes is not None and args.processes > 1 and distributed.world_size() == 1:
        # torchrun starts the processes on this host (their rendezvous on a free local port) and stops them all
        # when one fails; across hosts, run torchrun yourself with the command below (README: Several GPUs).
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                   str(args.processes), "-m", "qa_common.cli", "train", args.arch,
                   *(["--preset", args.preset] if args.preset else []), *extra]
        sys.stdout.flush()
        os.execv(sys.executable, command)
    if args.processes is not None and args.processes != distributed.world_size():
        raise UsageError(f"--processes {args.processes}, but the launcher started {distributed.world_size()}")
    run_job(args.arch, args.preset, parse_key_values(extra))
    return 0


def _settings(args, extra: list[str]) -> int:
    from qa_common.adapter import get_adapter
    from qa_common.config import config_to_dict
    from qa_common.jobs.train import job_and_model_configs

    adapter = get_adapter(args.arch)
    job_config, model_config = job_and_model_configs(adapter, args.preset, parse_key_values(extra))
    job, model = config_to_dict(job_config), config_to_dict(model_config)
    preset = args.preset or adapter.default_preset
    print(f"# job settings (qa_common.jobs.train.JobConfig)\n{json.dumps(job, indent=2)}")
    print(f"# {args.arch} settings, preset {preset!r} (presets: {', '.join(adapter.presets)})")
    print(json.dumps(model, indent=2))
    return 0


def inference_options(args):
    """The `InferenceOptions` of the evaluate/benchmark flags."""
    from qa_common.config import coerce
    from qa_common.extractive import InferenceOptions

    return InferenceOptions(precision=args.precision, max_batch_tokens=args.max_batch_tokens,
                            compile=coerce(args.compile, bool, "--compile"), compile_mode=args.compile_mode,
                            compile_dynamic=None if args.compile_dynamic == "auto" else
                            coerce(args.compile_dynamic, bool, "--compile-dynamic"),
                            cuda_graphs=coerce(args.cuda_graphs, bool, "--cuda-graphs"),
                            packed=coerce(args.packed, bool, "--packed"),
                            approximate_gelu=coerce(args.approximate_gelu, bool, "--approximate-gelu"))


def _load(model: str, runtime: str, options=None):
    from qa_common.adapter import load_model
    from qa_common.tracking.models import resolve_model_directory
    from qa_common.tracking.runs import configure_tracking

    configure_tracking()
    directory, run_id = resolve_model_directory(model)
    loaded, info = load_model(directory, runtime=runtime)
    if runtime == "torch":
        import torch

        loaded.to("cuda" if torch.cuda.is_available() else "cpu")
    if options is not None:
        loaded.configure_inference(options)
    return loaded, info, directory, run_id


def _evaluate(args, extra: list[str]) -> int:
    from qa_common.data.readers import load_squad
    from qa_common.jobs.evaluate import evaluate

    if extra:
        raise UsageError(f"unexpected arguments {extra}")
    examples = load_squad(args.data, skip_invalid=args.skip_invalid).examples
    model, info, _, _ = _load(args.model, args.runtime, inference_options(args))
    threshold = info.no_answer_threshold if args.no_answer_threshold is None else args.no_answer_threshold
    result = evaluate(model, examples, threshold, batch_size=args.batch_size, progress=True)
    if args.predictions_out:
        Path(args.predictions_out).write_text(json.dumps(result.predictions, indent=2))
    print(json.dumps(result.scores, indent=2))
    return 0


def _benchmark(args, extra: list[str]) -> int:
    from qa_common.data.readers import load_squad
    from qa_common.jobs.benchmark import benchmark_model, directory_size_bytes
    from qa_common.tracking.models import log_metrics_to_run

    if extra:
        raise UsageError(f"unexpected arguments {extra}")
    from qa_common.config import coerce

    if coerce(args.side_by_side, bool, "--side-by-side"):
        return _side_by_side(args)
    examples = load_squad(args.data).examples[: args.examples or None]
    figures_by_runtime = {}
    for runtime in args.runtime.split(","):
        model, _, directory, run_id = _load(args.model, runtime, inference_options(args))
        figures = benchmark_model(model, examples, batch_size=args.batch_size)
        figures["model_size_bytes"] = directory_size_bytes(directory)
        figures_by_runtime[runtime] = figures
        if run_id and args.log_to_run:
            log_metrics_to_run(run_id, {f"bench_{runtime}_{k}": v for k, v in figures.items()})
    print(json.dumps(figures_by_runtime, indent=2))
    return 0


def _side_by_side(args) -> int:
    from qa_common.jobs.speed import SpeedSettings, git_commit, run_side_by_side

    sizes = tuple(int(size) for size in args.model_only_batch_sizes.split(",") if size.strip())
    settings = SpeedSettings(batch_size=args.batch_size, model_only_batch_sizes=sizes,
                             sequence_length=args.sequence_length, latency_questions=args.latency_questions,
                             peak_tflops=args.peak_tflops or None, pipeline=args.pipeline,
                             pipeline_python=args.pipeline_python or None,
                             pipeline_pythonpath=args.pipeline_pythonpath or None,
                             pipeline_batch_size=args.pipeline_batch_size, repeats=args.repeats,
                             model_only_seconds=args.model_only_seconds,
                             architecture_questions=args.architecture_questions)
    import shlex

    # `python -m qa_common.cli` is the same command as squad-qa; quoted so it can be pasted into a shell.
    command = "squad-qa " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith(("squad-qa", "cli.py")) \
        else shlex.join(sys.argv)
    architectures = [spec for spec in (args.architecture or []) if spec]
    architectures += [spec.strip() for spec in args.architectures.split(";") if spec.strip()]
    result = run_side_by_side(args.model, args.data, settings=settings, options=inference_options(args),
                              report_dir=Path(args.report_dir), commit=args.commit or git_commit(),
                              command=command, architectures=architectures, max_examples=args.examples,
                              experiment=args.experiment or None)
    print((Path(args.report_dir) / "speed.md").read_text())
    if "mlflow_run_id" in result:
        print(f"MLflow run {result['mlflow_run_id']}")
    return 0


def _compare(args, extra: list[str]) -> int:
    from qa_common.jobs.compare import run_compare

    if extra:
        raise UsageError(f"unexpected arguments {extra}")
    run_compare(args.experiment, Path(args.output_dir), args.eval_data_digest or None)
    return 0


def _promote(args, extra: list[str]) -> int:
    from qa_common.config import coerce
    from qa_common.tracking import models
    from qa_common.tracking.runs import configure_tracking

    if extra:
        raise UsageError(f"unexpected arguments {extra}")
    # MLproject passes every parameter, unset ones as "".
    rollback = coerce(args.rollback, bool, "--rollback")
    max_latency_ms = coerce(args.max_latency_ms, float | None, "--max-latency-ms")
    max_size_mb = coerce(args.max_size_mb, float | None, "--max-size-mb")
    chosen = [bool(args.version), bool(args.run_id), rollback]
    if sum(chosen) != 1:
        raise UsageError("give exactly one of --version, --run-id or --rollback")
    configure_tracking()
    if rollback:
        decision = models.rollback(args.registered_model)
        print(f"{args.registered_model}@{models.CHAMPION} is version {decision.version} again: {decision.reason}")
        return 0
    version = args.version or models.register_run_model(args.run_id, args.registered_model)
    decision = models.promote_if_better(
        args.registered_model, version, metric=args.metric, max_latency_ms=max_latency_ms,
        max_size_bytes=max_size_mb * 1e6 if max_size_mb is not None else None)
    verdict = f"promoted to {models.CHAMPION}" if decision.promoted else \
        f"not promoted (kept as {models.CHALLENGER})"
    print(f"{args.registered_model} version {version}: {verdict}: {decision.reason}")
    return 0


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """The speed options of extractive readers (`qa_common.extractive.InferenceOptions`)."""
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="weights on a GPU (auto: bf16 where supported); a CPU keeps fp32")
    parser.add_argument("--max-batch-tokens", type=int, default=0,
                        help="windows per batch by padded tokens (0: --batch-size windows)")
    parser.add_argument("--compile", default="false", help="torch.compile the model on a GPU (true/false)")
    parser.add_argument("--compile-mode", default="default", help="torch.compile mode (e.g. max-autotune)")
    parser.add_argument("--compile-dynamic", default="auto",
                        help="auto: dynamo's dynamic shapes after a recompile; false: one graph per bucketed shape")
    parser.add_argument("--cuda-graphs", default="false",
                        help="replay CUDA graphs for small batches on a GPU (true/false)")
    parser.add_argument("--packed", default="true",
                        help="on a GPU, run batches unpadded with fused Q/K/V where the architecture can "
                             "(bert_qa; true/false)")
    parser.add_argument("--approximate-gelu", default="false",
                        help="packed modules on a GPU: exact GELU as cuBLASLt's tanh-GELU GEMM epilogue (true/false)")


def _prompt_eval(args, extra: list[str]) -> int:
    from qa_common.jobs.prompt_eval import run_prompt_eval

    result = run_prompt_eval(parse_key_values(extra))
    if result["report"]:
        print(result["report"]["markdown"])
    print(f"study run {result['run_id']}: {len(result['child_run_ids'])} child runs")
    return 0


def _prompt_report(args, extra: list[str]) -> int:
    from qa_common.jobs.prompt_eval import STUDY_KIND
    from qa_common.jobs.prompt_report import write_report
    from qa_common.tracking import studies

    if extra:
        raise UsageError(f"unexpected arguments {extra}")
    study = args.study or studies.latest_study(args.experiment, STUDY_KIND)
    report = write_report(study, Path(args.output_dir) if args.output_dir else None)
    print(report["markdown"])
    return 0


def _lm_eval(args, extra: list[str]) -> int:
    from qa_common.jobs.lm_eval import run_lm_eval

    result = run_lm_eval(args.model, parse_key_values(extra))
    print(json.dumps(result["metrics"], indent=2))
    print(f"run {result['run_id']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="squad-qa", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train, evaluate, export, benchmark, log and register a model")
    train.add_argument("arch", help="architecture (an installed adapter, e.g. bert_qa)")
    train.add_argument("--preset", default=None, help="named preset of the architecture's config")
    train.add_argument("--processes", type=int, default=None,
                       help="train on this many processes of this host (one per GPU), started by torchrun")
    train.set_defaults(handler=_train)

    settings = commands.add_parser("settings", help="print the job and model settings train would use")
    settings.add_argument("arch")
    settings.add_argument("--preset", default=None)
    settings.set_defaults(handler=_settings)

    evaluate = commands.add_parser("evaluate", help="score a saved or logged model on a SQuAD file")
    evaluate.add_argument("model", help="model directory or MLflow model URI (models:/squad-qa@champion)")
    evaluate.add_argument("data", help="SQuAD JSON, JSONL or hub:squad_v2[:split]")
    evaluate.add_argument("--runtime", default="torch", choices=["torch", "onnx"])
    evaluate.add_argument("--batch-size", type=int, default=64)
    evaluate.add_argument("--no-answer-threshold", type=float, default=None,
                          help="override the calibrated threshold stored with the model")
    evaluate.add_argument("--predictions-out", default=None)
    evaluate.add_argument("--skip-invalid", action="store_true")
    add_inference_arguments(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    benchmark = commands.add_parser("benchmark", help="speed and size figures of a saved or logged model")
    benchmark.add_argument("model")
    benchmark.add_argument("data")
    benchmark.add_argument("--runtime", default="torch", help="comma-separated: torch,onnx")
    benchmark.add_argument("--examples", type=int, default=200, help="the first N questions (0: all)")
    benchmark.add_argument("--batch-size", type=int, default=32)
    benchmark.add_argument("--log-to-run", action=argparse.BooleanOptionalAction, default=True)
    add_inference_arguments(benchmark)
    side = benchmark.add_argument_group(
        "side by side", "--side-by-side: ours vs the plain model at fixed padding vs transformers' QA pipeline "
        "(qa_common.jobs.speed); MODEL may also be ADAPTER:PRESET[:JSON overrides], e.g. bert_qa:random-bert-base")
    side.add_argument("--side-by-side", nargs="?", const="true", default="false",
                      help="true: the side-by-side comparison instead of the per-runtime figures")
    side.add_argument("--report-dir", default="outputs/speed", help="speed.json and speed.md go here")
    side.add_argument("--model-only-batch-sizes", default="1,32,256")
    side.add_argument("--sequence-length", type=int, default=384)
    side.add_argument("--model-only-seconds", type=float, default=2.0)
    side.add_argument("--repeats", type=int, default=3)
    side.add_argument("--latency-questions", type=int, default=100)
    side.add_argument("--peak-tflops", type=float, default=0.0,
                      help="bf16 dense peak of the GPU (0: from its name, e.g. H100/H200 989)")
    side.add_argument("--pipeline", default="auto", choices=["auto", "off"])
    side.add_argument("--pipeline-python", default="", help="a Python whose transformers has the QA pipeline")
    side.add_argument("--pipeline-pythonpath", default="",
                      help="a directory with such a transformers (pip install --target DIR 'transformers<5.3')")
    side.add_argument("--pipeline-batch-size", type=int, default=64)
    side.add_argument("--architecture", action="append", default=[],
                      help="ADAPTER:PRESET[:JSON] of another architecture to time end to end (repeatable)")
    side.add_argument("--architectures", default="", help="the same, several separated by ';'")
    side.add_argument("--architecture-questions", type=int, default=200)
    side.add_argument("--commit", default="", help="the commit to name in the report (default: git rev-parse)")
    side.add_argument("--experiment", default="squad-qa-speed", help="MLflow experiment ('' : do not log)")
    benchmark.set_defaults(handler=_benchmark)

    compare = commands.add_parser("compare", help="leaderboard and accuracy-vs-cost plots of an experiment's runs")
    compare.add_argument("--experiment", default="squad-qa")
    compare.add_argument("--output-dir", default="outputs/compare")
    compare.add_argument("--eval-data-digest", default=None,
                         help="rank the runs evaluated on this data (default: the data most runs used)")
    compare.set_defaults(handler=_compare)

    promote = commands.add_parser("promote", help="move the champion alias through the gate, or roll it back")
    promote.add_argument("--registered-model", default="squad-qa")
    promote.add_argument("--version", default="", help="the registered version to promote")
    promote.add_argument("--run-id", default="", help="promote this run's model (registered first if need be)")
    promote.add_argument("--rollback", nargs="?", const="true", default="false",
                         help="make the previous champion the champion again")
    promote.add_argument("--metric", default="exact", help="the version tag the candidate must beat the champion on")
    promote.add_argument("--max-latency-ms", default="", help="refuse a candidate whose p50 latency is higher")
    promote.add_argument("--max-size-mb", default="", help="refuse a candidate larger on disk")
    promote.set_defaults(handler=_promote)

    prompt_eval = commands.add_parser(
        "prompt-eval", help="the prompting study: k-shot prompts for causal LMs, scored and timed, one MLflow parent "
        "run and a child run per (model, k);"
        " settings: the fields of qa_common.jobs.prompt_eval.PromptEvalConfig as --key value")
    prompt_eval.set_defaults(handler=_prompt_eval)

    prompt_report = commands.add_parser("prompt-report", help="the prompting study's table and plot from its runs")
    prompt_report.add_argument("--study", default="", help="the study's parent run id (default: the newest study)")
    prompt_report.add_argument("--experiment", default="squad-qa-prompting")
    prompt_report.add_argument("--output-dir", default="", help="also keep the files here")
    prompt_report.set_defaults(handler=_prompt_report)

    lm_eval = commands.add_parser("lm-eval", help="lm-evaluation-harness tasks on a causal LM, logged as an MLflow "
                                  "run (needs the lm-eval extra: pip install 'squad-qa-common[lm-eval]')")
    lm_eval.add_argument("model", help="hub name, checkpoint, LoRA adapter or squad-qa model directory, MLflow URI")
    lm_eval.set_defaults(handler=_lm_eval)

    add_score_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "score":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return run_score(args)
    from qa_common.adapter import HardwareUnavailableError
    from qa_common.config import ConfigError
    from qa_common.data.readers import SquadFormatError

    try:
        return args.handler(args, extra)
    except (UsageError, ConfigError, SquadFormatError, ValueError, KeyError, FileNotFoundError,
            HardwareUnavailableError) as error:
        # (PromotionError is a ValueError.)
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"squad-qa {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:
        # A full disk or an unwritable directory or artifact store (the job's StorageError says which); a run
        # it had started is marked FAILED.
        print(f"squad-qa {args.command}: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
