"""Kill the training job with SIGKILL at random (seeded) points and check that nothing is lost.

    python scripts/reliability_faults.py                     # 5 random kills, seed 15 (make reliability)
    python scripts/reliability_faults.py --kills 8 --seed 3 --workdir /tmp/faults

In one throwaway MLflow store (SQLite, artifacts in ./mlruns of ``--workdir``) it trains the tiny bert_qa
preset twice with the same seed and settings:

1. the reference: uninterrupted, registered and promoted to ``champion``;
2. the same command, SIGKILLed ``--kills`` times at points drawn with ``--seed`` from everywhere the job can
   still get to after its last complete checkpoint: any optimizer step (most of them between checkpoints),
   with a random delay after it so the kill can land inside a checkpoint write or a later step, and the work
   after training (calibration, evaluation, saving, logging the model, registering and promoting it); then
   killed once more while its model is being logged (a random delay into ``log_model``: the check that
   ``squad-qa promote --run-id`` refuses the half-logged model runs here) and once right after its version
   was created in the registry, before it was tagged. After each kill the same command is started again, and
   the last attempt runs to the end.

The kills are real (``SQUAD_QA_FAULT``, see ``qa_common.tracking.faults``): the process sends itself SIGKILL,
so no exception handler, ``finally`` or ``atexit`` runs. The script prints where each kill landed, where each
attempt resumed, the final metrics of the killed-and-resumed run against the reference and their largest
difference, and checks the registry: every version's logged model is complete, loads and answers, and
``champion`` is still the reference's version and answers. Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_DATA = REPO / "data" / "sample" / "train-v2.0-sample.json"
VALIDATION_DATA = REPO / "data" / "sample" / "validation-v2.0-sample.json"
REGISTERED_MODEL = "squad-qa"
EXPERIMENT = "squad-qa"
TRAIN_QUESTIONS = 40
SAVE_STEPS = 7
# Per-attempt figures: a resumed attempt reports its own time, speed and mean loss (README, Resume), so these
# differ from the reference by design; bench_* and system metrics are timings too.
PER_ATTEMPT_METRICS = ("train_runtime_s", "train_features_per_s", "train_loss_mean")
AFTER_TRAINING = ("calibrate", "evaluate", "save_model", "log_model", "register", "register:created", "promote",
                  "finish")
# A kill into logging the model lands this share of the way through it, as long as logging took in the reference
# run (from its logged model's creation to its version's): while the logged model is PENDING.
LOG_MODEL_SHARE = (0.1, 0.6)
ATTEMPT_TIMEOUT_S = 600


def job_settings(workdir: Path, seed: int) -> list[str]:
    """The tiny job both runs use: it learns 40 training questions by heart and is evaluated on them (the one
    place a tiny random model scores well above zero, so the metrics say something about its weights); the
    threshold is calibrated on the answerable validation questions, so it lets learned answers through."""
    from qa_common.data.readers import load_squad, write_squad_json

    eval_data, calibration_data = workdir / "train-slice.json", workdir / "validation-answerable.json"
    if not eval_data.exists():
        write_squad_json(load_squad(TRAIN_DATA).examples[:TRAIN_QUESTIONS], eval_data)
        write_squad_json([example for example in load_squad(VALIDATION_DATA).examples if example.answers],
                         calibration_data)
    return ["--train-data", str(TRAIN_DATA), "--max-train-examples", str(TRAIN_QUESTIONS),
            "--eval-data", str(eval_data), "--calibration-data", str(calibration_data),
            "--threshold-metric", "f1", "--threshold-rule", "best",
            "--epochs", "12", "--learning-rate", "3e-3", "--batch-size", "16", "--seed", str(seed),
            "--save-steps", str(SAVE_STEPS), "--logging-steps", "1",
            "--export-onnx", "false", "--benchmark", "false", "--system-metrics", "false"]


def job_environment(workdir: Path, fault: str | None = None) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("MLFLOW_") and key != "SQUAD_QA_FAULT"}
    environment.update(MLFLOW_TRACKING_URI=f"sqlite:///{workdir / 'mlflow.db'}", HF_HUB_OFFLINE="1",
                       TOKENIZERS_PARALLELISM="false",
                       PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if fault:
        environment["SQUAD_QA_FAULT"] = fault
    return environment


@dataclass
class Attempt:
    fault: str | None
    returncode: int
    seconds: float
    resumed_run: bool  # it went on logging into the run an earlier attempt started
    resumed_from: str | None  # the checkpoint it resumed training from (None: from step 0)
    landed: str | None  # the fault's own line: where the kill landed
    last_logged_step: int | None  # the last train_loss step in the store once the attempt ended
    stderr_tail: str = ""


@dataclass
class Report:
    seed: int
    reference_run_id: str = ""
    reference_seconds: float = 0.0
    log_model_seconds: float = 0.0  # from the reference's logged model's creation to its registered version's
    run_ids: list[str | None] = field(default_factory=list)  # the run each attempt of the killed job logged into
    left_behind: dict[str, str] = field(default_factory=dict)  # other runs of the killed job, with their status
    attempts: list[Attempt] = field(default_factory=list)
    total_steps: int = 0
    compared: dict[str, tuple[float, float]] = field(default_factory=dict)
    loss_steps: int = 0
    loss_values: int = 0  # train_loss values the killed run logged (steps re-run after a resume count twice)
    loss_max_abs_diff: float = math.nan
    weights_max_abs_diff: float = math.nan
    na_prob_max_abs_diff: float = math.nan
    run_status: str = ""
    promote_half_logged: str = ""  # what `squad-qa promote --run-id` said while the model was half-logged
    versions: dict[str, str] = field(default_factory=dict)  # version -> "ok: answered ..." or the problem
    champion_before: str = ""
    champion_after: str = ""
    champion_answer: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def kills(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if attempt.returncode == -9]

    @property
    def max_abs_diff(self) -> float:
        return max((abs(a - b) for a, b in self.compared.values()), default=math.nan)


def run_attempt(command: list[str], workdir: Path, fault: str | None) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    process = subprocess.run(command, cwd=workdir, env=job_environment(workdir, fault), capture_output=True,
                             text=True, timeout=ATTEMPT_TIMEOUT_S)
    return process, time.monotonic() - started


def command_for(output_dir: Path, settings: list[str]) -> list[str]:
    return [sys.executable, "-m", "qa_common.cli", "train", "bert_qa", "--preset", "tiny", *settings,
            "--output-dir", str(output_dir)]


def complete_checkpoint_step(output_dir: Path) -> int:
    from qa_common.jobs.train import last_complete_checkpoint

    last = last_complete_checkpoint(output_dir / "checkpoints")
    return int(last.rpartition("-")[2]) if last else 0


def log_model_fault(rng: random.Random, log_model_s: float) -> str:
    return f"log_model+{rng.uniform(*LOG_MODEL_SHARE) * log_model_s:.2f}"


def next_fault(rng: random.Random, total_steps: int, resume_step: int, log_model_s: float) -> str:
    """A point the next attempt will reach: a step after its resume point (with a random delay of up to 0.25 s,
    a step or two, or none), or a phase after training. Steps outnumber phases, so most kills land in training."""
    steps = list(range(resume_step + 1, total_steps + 1))
    choice = rng.choice(steps + list(AFTER_TRAINING))
    if choice in AFTER_TRAINING:
        return choice if choice != "log_model" else log_model_fault(rng, log_model_s)
    return f"step:{choice}" if rng.random() < 0.3 else f"step:{choice}+{rng.uniform(0.0, 0.25):.3f}"


def last_logged_step(client, run_id: str) -> int | None:
    history = client.get_metric_history(run_id, "train_loss")
    return max((metric.step for metric in history), default=None)


def run_id_printed(process: subprocess.CompletedProcess) -> str | None:
    found = re.search(r"MLflow run ([0-9a-f]{32});", process.stdout) or \
        re.search(r"resuming MLflow run ([0-9a-f]{32})", process.stderr)
    return found.group(1) if found else None


def other_runs(client, reference_run_id: str) -> dict[str, str]:
    """Every run of the experiment but the reference, with its status."""
    from mlflow.entities import ViewType

    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL) if experiment else []
    return {run.info.run_id: run.info.status for run in runs if run.info.run_id != reference_run_id}


def promote_half_logged_run(run_id: str) -> str:
    """`squad-qa promote --run-id` (in this process, on the store MLFLOW_TRACKING_URI names) on the run whose
    model logging was killed: it must refuse."""
    import contextlib
    import io

    from qa_common.cli import main as squad_qa

    said = io.StringIO()
    with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
        code = squad_qa(["promote", "--run-id", run_id])
    return f"exit {code}: {(said.getvalue().strip().splitlines() or [''])[-1]}"


def flat_weights(path: Path):
    import numpy as np
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    return {name: np.asarray(tensor, dtype=np.float64) for name, tensor in tensors.items()}


def compare_runs(client, report: Report, reference_dir: Path, killed_dir: Path, killed_id: str) -> None:
    import numpy as np

    reference = client.get_run(report.reference_run_id)
    killed = client.get_run(killed_id)
    report.run_status = killed.info.status
    excluded = set(PER_ATTEMPT_METRICS)
    keys = sorted(key for key in reference.data.metrics
                  if key not in excluded and not key.startswith(("bench_", "system/")))
    missing = [key for key in keys if key not in killed.data.metrics]
    if missing:
        report.problems.append(f"the killed run lacks metrics {missing}")
    report.compared = {key: (reference.data.metrics[key], killed.data.metrics[key])
                       for key in keys if key in killed.data.metrics}

    # Steps a killed attempt did after its last checkpoint were logged twice (before the kill and after the
    # resume): every value logged is held against the reference's.
    reference_loss = {metric.step: metric.value
                      for metric in client.get_metric_history(report.reference_run_id, "train_loss")}
    killed_history = client.get_metric_history(killed_id, "train_loss")
    killed_steps = {metric.step for metric in killed_history}
    report.loss_steps, report.loss_values = len(killed_steps), len(killed_history)
    if set(reference_loss) != killed_steps:
        report.problems.append(f"train_loss logged at other steps: {sorted(set(reference_loss) ^ killed_steps)}")
    report.loss_max_abs_diff = max(abs(reference_loss[metric.step] - metric.value)
                                   for metric in killed_history if metric.step in reference_loss)
    reference_weights = flat_weights(reference_dir / "model" / "model.safetensors")
    killed_weights = flat_weights(killed_dir / "model" / "model.safetensors")
    report.weights_max_abs_diff = max(float(np.max(np.abs(reference_weights[name] - killed_weights[name])))
                                      for name in reference_weights)

    def na_probs(run_id):
        import mlflow

        return mlflow.artifacts.load_dict(f"runs:/{run_id}/evaluation/na_probs.json")

    reference_na, killed_na = na_probs(report.reference_run_id), na_probs(killed_id)
    report.na_prob_max_abs_diff = max(abs(reference_na[qid] - killed_na[qid]) for qid in reference_na)


def check_registry(client, report: Report, question: dict[str, str], killed_id: str) -> None:
    """Every version was registered to the end (its tags written), its logged model is complete, loads and
    answers; the killed run has one version; champion is unchanged and answers."""
    import mlflow

    from qa_common.tracking.models import ARTIFACTS_TAG, CHAMPION, artifacts_problem

    versions = sorted(client.search_model_versions(f"name='{REGISTERED_MODEL}'"), key=lambda v: int(v.version))
    of_killed_run = [version.version for version in versions if version.run_id == killed_id]
    if len(of_killed_run) != 1:
        report.problems.append(f"the killed run has {len(of_killed_run)} registered versions: {of_killed_run}")
    for version in versions:
        problem = artifacts_problem(REGISTERED_MODEL, version.version)
        unfinished = [tag for tag in ("exact", "eval_data_digest", ARTIFACTS_TAG, "promotion_decision")
                      if tag not in version.tags]
        if problem is None and unfinished:
            problem = f"registered half-way: no {', '.join(unfinished)} tag"
        if problem is None:
            try:
                answer = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}/{version.version}").predict([question])
                problem = None if len(answer) == 1 else f"answered {len(answer)} records for one question"
                result = f"complete, loads, answers {answer.iloc[0]['answer']!r}"
            except Exception as error:  # noqa: BLE001 - any failure to load or answer is the finding
                problem = f"does not load or answer: {type(error).__name__}: {error}"
        run = "reference" if version.run_id == report.reference_run_id else "killed"
        report.versions[str(version.version)] = f"({run} run) " + (f"PROBLEM: {problem}" if problem else result)
        if problem:
            report.problems.append(f"version {version.version}: {problem}")
    report.champion_after = str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version)
    if report.champion_after != report.champion_before:
        report.problems.append(f"champion moved from version {report.champion_before} to {report.champion_after}")
    try:
        answer = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}@{CHAMPION}").predict([question])
        report.champion_answer = answer.iloc[0]["answer"]
    except Exception as error:  # noqa: BLE001
        report.problems.append(f"champion does not load or answer: {type(error).__name__}: {error}")


def run_faults(workdir: Path, *, kills: int, seed: int, registry_kills: bool = True, log=print) -> Report:
    """The whole experiment in ``workdir`` (fresh or empty); returns what it found (``problems`` empty: pass).

    This process points MLflow at the experiment's store meanwhile, and back where it was afterwards.
    """
    import mlflow
    from mlflow.tracking import _model_registry, _tracking_service

    workdir.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    # mlflow.set_*_uri also set these variables; all of it is put back afterwards (tests call this in-process).
    saved_environment = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_uris = (_tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri)
    saved_path = list(sys.path)  # loading a logged pyfunc model puts its code directory first on sys.path
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        return _run_faults(workdir, uri, kills=kills, seed=seed, registry_kills=registry_kills, log=log)
    finally:
        sys.path[:] = saved_path
        _tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri = saved_uris
        for key, value in saved_environment.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run_faults(workdir: Path, uri: str, *, kills: int, seed: int, registry_kills: bool, log) -> Report:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    rng = random.Random(seed)
    report = Report(seed=seed)
    settings = job_settings(workdir, seed=42)
    reference_dir, killed_dir = workdir / "reference", workdir / "killed"

    process, seconds = run_attempt(command_for(reference_dir, settings), workdir, None)
    if process.returncode != 0:
        raise RuntimeError(f"the reference run failed (exit {process.returncode}):\n{process.stderr[-3000:]}")
    report.reference_run_id, report.reference_seconds = run_id_printed(process), seconds
    report.total_steps = int(client.get_run(report.reference_run_id).data.metrics["train_steps"])
    champion = client.get_model_version_by_alias(REGISTERED_MODEL, "champion")
    report.champion_before = str(champion.version)
    logged = client.get_logged_model(champion.source.removeprefix("models:/"))
    report.log_model_seconds = (champion.creation_timestamp - logged.creation_timestamp) / 1000
    log(f"reference run {report.reference_run_id}: {report.total_steps} steps, {seconds:.1f} s, logging its model "
        f"{report.log_model_seconds:.2f} s, registered as champion version {report.champion_before}")

    planned_registry = [log_model_fault(rng, report.log_model_seconds), "register:created"]
    if not registry_kills:
        planned_registry = []
    command = command_for(killed_dir, settings)
    while True:
        resume_step = complete_checkpoint_step(killed_dir)
        number = len(report.kills) + 1
        if len(report.kills) < kills:
            fault = next_fault(rng, report.total_steps, resume_step, report.log_model_seconds)
        elif planned_registry:
            fault = planned_registry.pop(0)
        else:
            fault = None
        runs_before = other_runs(client, report.reference_run_id)
        process, seconds = run_attempt(command, workdir, fault)
        started = set(other_runs(client, report.reference_run_id)) - set(runs_before)
        run_id = run_id_printed(process) or (started.pop() if len(started) == 1 else None)
        report.run_ids.append(run_id)
        resumed = re.search(r"resuming from (\S+)", process.stderr)
        landed = re.search(r"fault injected: SIGKILL (.*)", process.stderr)
        landed = landed.group(1) if landed else None
        attempt = Attempt(fault, process.returncode, seconds, "resuming MLflow run" in process.stderr,
                          resumed.group(1) if resumed else None, landed,
                          last_logged_step(client, run_id) if run_id else None, process.stderr[-3000:])
        report.attempts.append(attempt)
        start = f"resumed from {Path(attempt.resumed_from).name}" if attempt.resumed_from else (
            "resumed its run from step 0" if attempt.resumed_run else "started afresh")
        if process.returncode == -9:
            log(f"kill {number}: {fault} ({start}); {landed or 'no fault line'}; "
                f"last train_loss step logged {attempt.last_logged_step}, last complete checkpoint "
                f"{complete_checkpoint_step(killed_dir)}")
            if fault.startswith("log_model") and run_id:
                report.promote_half_logged = promote_half_logged_run(run_id)
                log(f"  squad-qa promote --run-id {run_id} while its model was half-logged: "
                    f"{report.promote_half_logged}")
            continue
        if process.returncode != 0:
            report.problems.append(f"attempt with fault {fault} exited {process.returncode}")
            log(f"attempt with fault {fault} exited {process.returncode}:\n{process.stderr[-3000:]}")
            return report
        if fault is not None:
            log(f"fault {fault} never landed (the attempt {start} and finished first)")
        log(f"final attempt: {start}, finished in {seconds:.1f} s")
        break

    killed_id = report.run_ids[-1]
    if killed_id is None:
        report.problems.append("the last attempt's run is not in the store")
        return report
    if set(report.run_ids) != {killed_id}:
        report.problems.append(f"the attempts logged into several runs: {report.run_ids}")
    report.left_behind = {run_id: status for run_id, status in other_runs(client, report.reference_run_id).items()
                          if run_id != killed_id}
    if report.left_behind:
        report.problems.append(f"runs left behind: {report.left_behind}")
    try:
        compare_runs(client, report, reference_dir, killed_dir, killed_id)
    except Exception as error:  # noqa: BLE001 - e.g. an artifact the killed run lacks: the finding, not a crash
        report.problems.append(f"comparing the runs failed: {type(error).__name__}: {error}")
    if report.run_status != "FINISHED":
        report.problems.append(f"the killed run ended {report.run_status}, not FINISHED")
    if registry_kills and not report.promote_half_logged.startswith("exit 2"):
        report.problems.append(f"promote --run-id of the half-logged model did not refuse: "
                               f"{report.promote_half_logged or 'not tried'}")
    from qa_common.data.readers import load_squad

    example = load_squad(workdir / "train-slice.json").examples[0]
    check_registry(client, report, {"question": example.question, "context": example.context}, killed_id)
    return report


def figures(report: Report, tolerance: float) -> str:
    """The figures block `make reliability` prints."""
    killed = report.kills
    lines = ["", "=== reliability: SIGKILL the training job, resume, compare with an uninterrupted run ===",
             f"seed {report.seed}; tiny bert_qa, {report.total_steps} optimizer steps, checkpoint every "
             f"{SAVE_STEPS} steps",
             f"kills injected: {len(killed)}; resumes into the same run: "
             f"{sum(1 for attempt in report.attempts if attempt.resumed_run)} "
             f"({sum(1 for attempt in report.attempts if attempt.resumed_from)} from a checkpoint); "
             f"attempts: {len(report.attempts)}"]
    for number, attempt in enumerate(killed, 1):
        start = Path(attempt.resumed_from).name if attempt.resumed_from else "step 0"
        where = attempt.landed or "?"
        lines.append(f"  kill {number}: {attempt.fault:<22} from {start:<14} -> {where}")
    lines.append(f"run ids: reference {report.reference_run_id}, killed job {', '.join(map(str, set(report.run_ids)))} "
                 f"(all {len(report.run_ids)} attempts in the same run: "
                 f"{'yes' if len(set(report.run_ids)) == 1 else 'NO'}); status {report.run_status or '?'}; "
                 f"other runs left behind: {len(report.left_behind)}")
    shown = [key for key in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1", "best_f1",
                             "answer_all_f1", "no_answer_threshold", "calibration_f1", "train_loss", "train_steps")
             if key in report.compared]
    lines.append(f"{'metric':<22} {'uninterrupted':>16} {'killed+resumed':>16} {'|diff|':>10}")
    for key in shown:
        reference, resumed = report.compared[key]
        lines.append(f"{key:<22} {reference:>16.8g} {resumed:>16.8g} {abs(reference - resumed):>10.3g}")
    lines += [f"max |diff| over all {len(report.compared)} compared metrics: {report.max_abs_diff:.3g} "
              f"(tolerance {tolerance:g}; per-attempt figures left out: {', '.join(PER_ATTEMPT_METRICS)})",
              f"train_loss at each of {report.loss_steps} steps ({report.loss_values} values logged, re-run steps "
              f"twice): max |diff| {report.loss_max_abs_diff:.3g}; "
              f"model weights: max |diff| {report.weights_max_abs_diff:.3g}; no-answer probabilities: "
              f"max |diff| {report.na_prob_max_abs_diff:.3g}"]
    if report.promote_half_logged:
        lines.append(f"squad-qa promote --run-id on the half-logged model: {report.promote_half_logged}")
    lines.append("registry: " + "; ".join(f"version {version} {state}" for version, state in report.versions.items()))
    lines.append(f"champion: version {report.champion_before} before, {report.champion_after} after; "
                 f"answers {report.champion_answer!r}")
    lines.append("verdict: " + ("PASS" if not report.problems else "FAIL\n  " + "\n  ".join(report.problems)))
    return "\n".join(lines)


def check_tolerance(report: Report, tolerance: float) -> None:
    for name, value in (("metrics", report.max_abs_diff), ("train_loss", report.loss_max_abs_diff),
                        ("weights", report.weights_max_abs_diff), ("na_probs", report.na_prob_max_abs_diff)):
        if not value <= tolerance:  # NaN fails too
            report.problems.append(f"{name} differ by {value:.3g} > {tolerance:g}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=5, help="random kills (before the two registry kills)")
    parser.add_argument("--seed", type=int, default=15, help="seed of the kill points (the job's seed is fixed)")
    parser.add_argument("--tolerance", type=float, default=1e-6, help="largest allowed |difference|")
    parser.add_argument("--no-registry-kills", dest="registry_kills", action="store_false",
                        help="leave out the kills while logging and registering the model")
    parser.add_argument("--workdir", default=None, help="keep the store here (default: a temporary directory)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="squad-qa-faults-") as temporary:
        workdir = Path(args.workdir) if args.workdir else Path(temporary)
        report = run_faults(workdir, kills=args.kills, seed=args.seed, registry_kills=args.registry_kills)
        check_tolerance(report, args.tolerance)
        print(figures(report, args.tolerance))
    return 0 if not report.problems else 1


if __name__ == "__main__":
    sys.exit(main())
