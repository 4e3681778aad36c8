"""Helpers of the end-to-end tests: run `squad-qa` as a subprocess against a throwaway MLflow store, read
that store, and write the data slices the shared job trains and is evaluated on.

Every job runs in a temporary working directory with MLFLOW_TRACKING_URI=sqlite:///<tmp>/mlflow.db, so the
default artifact root (./mlruns) lands there too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRAIN_DATA = REPO / "data" / "sample" / "train-v2.0-sample.json"
VALIDATION_DATA = REPO / "data" / "sample" / "validation-v2.0-sample.json"
OFFICIAL_EVAL = REPO / "tests" / "reference" / "squad_v2_official_eval.py"
EXPERIMENT = "squad-qa"
REGISTERED_MODEL = "squad-qa"

# The champion learns a slice of training questions by heart and is evaluated on that same slice: the job
# allows it (only the calibration data must be unseen), and it is the one place a tiny random model shows it
# learns. Calibration uses the answerable validation questions, so the threshold lets learned answers through;
# the official best-F1 threshold is asked for, since the default (lowest threshold within one standard error of
# the best exact match) abstains on 76 questions a tiny model cannot tell apart.
TRAIN_SLICE = 40
CHAMPION_SETTINGS = [
    "--train-data", str(TRAIN_DATA), "--max-train-examples", str(TRAIN_SLICE),
    "--epochs", "15", "--learning-rate", "3e-3", "--batch-size", "16", "--logging-steps", "2", "--seed", "42",
    "--threshold-metric", "f1", "--threshold-rule", "best",
]


def tracking_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def job_environment(directory: Path) -> dict[str, str]:
    """The environment of a `squad-qa` or `mlflow` subprocess that tracks into ``directory``."""
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": tracking_uri(directory),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }


def squad_qa(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the `squad-qa` command in a subprocess with ``cwd`` as its working directory and MLflow store."""
    return subprocess.run([sys.executable, "-m", "qa_common.cli", *args], cwd=cwd, env=job_environment(cwd),
                          capture_output=True, text=True, timeout=timeout)


def describe(process: subprocess.CompletedProcess) -> str:
    return f"exit {process.returncode}\n--- stdout\n{process.stdout[-4000:]}\n--- stderr\n{process.stderr[-4000:]}"


def experiment_runs(uri: str, experiment: str = EXPERIMENT) -> list:
    """Every run of ``experiment`` in the store at ``uri`` (none when the experiment does not exist)."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    return client.search_runs([found.experiment_id], run_view_type=ViewType.ALL,
                              order_by=["attribute.start_time ASC"])


@dataclass
class ChampionJob:
    """The shared job: what it printed, where it tracked, and what its run and registry looked like after it."""

    workdir: Path
    uri: str
    eval_data: Path
    calibration_data: Path
    output_dir: Path
    process: subprocess.CompletedProcess
    run_id: str
    runs_after_job: list

    @property
    def settings(self) -> list[str]:
        """The job's settings minus its output directory: later jobs reuse them to be comparable."""
        return champion_settings(self.eval_data, self.calibration_data)


def champion_settings(eval_data: Path, calibration_data: Path) -> list[str]:
    return [*CHAMPION_SETTINGS, "--eval-data", str(eval_data), "--calibration-data", str(calibration_data),
            "--benchmark-examples", "20"]


def write_slices(directory: Path) -> tuple[Path, Path]:
    """The evaluation slice (the first training questions, which the champion trains on) and the calibration
    file (the answerable validation questions)."""
    from qa_common.data.readers import load_squad, write_squad_json

    train = load_squad(TRAIN_DATA).examples[:TRAIN_SLICE]
    eval_data = directory / "train-slice.json"
    write_squad_json(train, eval_data)
    calibration_data = directory / "validation-answerable.json"
    write_squad_json([example for example in load_squad(VALIDATION_DATA).examples if example.answers],
                     calibration_data)
    return eval_data, calibration_data


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def post(url: str, payload) -> tuple[int, dict]:
    """POST ``payload`` as JSON; (status, decoded body) for success and HTTP errors alike."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# Tiny random causal LMs of the prompting study's tests (2 layers, 32-d; the tiny BPE's 4,096 tokens).
TINY_CAUSAL_LM_SIZES = {
    "mamba": {"hidden_size": 32, "num_hidden_layers": 2, "state_size": 8},
    "rwkv": {"hidden_size": 32, "num_hidden_layers": 2, "attention_hidden_size": 32, "intermediate_size": 64,
             "context_length": 256},
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 512},
}


def save_tiny_causal_lm(model_type: str, directory: Path) -> Path:
    """A random 2-layer 32-d ``model_type`` checkpoint directory with the tiny BPE tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from mamba_qa.tokenizer import TINY_TOKENIZER_DIRECTORY
    from qa_common.causal_lm import load_tokenizer

    tokenizer = load_tokenizer(TINY_TOKENIZER_DIRECTORY)
    torch.manual_seed(0)
    config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), bos_token_id=tokenizer.eos_token_id,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                  **TINY_CAUSAL_LM_SIZES[model_type])
    AutoModelForCausalLM.from_config(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
