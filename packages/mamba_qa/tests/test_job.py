"""The shared job trains, calibrates, evaluates, saves and logs a tiny mamba_qa model with k-shot prompts and
synthetic negatives; the generation benchmark logs its run to the same store (one SQLite store: creating one
takes seconds)."""

import json

import pytest

from mamba_qa.benchmark import main as benchmark_main
from qa_common.jobs.train import JobConfig, load_job_data, run_job
from qa_common.testing.contract import TRAIN_SAMPLE, VALIDATION_SAMPLE, sample_directory


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    directory = tmp_path_factory.mktemp("mamba-store")
    return directory, f"sqlite:///{directory / 'mlflow.db'}"


def test_the_job_trains_and_logs_a_mamba_reader(store, monkeypatch):
    import mlflow

    directory, uri = store
    monkeypatch.chdir(directory)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    sample = sample_directory()
    result = run_job("mamba_qa", "tiny", {
        "train_data": str(sample / TRAIN_SAMPLE), "eval_data": str(sample / VALIDATION_SAMPLE),
        "calibration_articles": 1, "max_eval_examples": 12, "shots": 1, "max_length": 320,
        "negatives_ratio": 0.5, "max_steps": 4, "batch_size": 8, "learning_rate": 1e-2, "system_metrics": False,
        "register": False, "benchmark": True, "benchmark_examples": 3, "output_dir": str(directory / "out")})
    run = mlflow.get_run(result["run_id"])
    metrics, params = run.data.metrics, run.data.params
    assert run.data.tags["adapter"] == "mamba_qa" and params["model.negatives_ratio"] == "0.5"
    assert params["model.shots"] == "1" and metrics["prompt_shots"] == 1
    # The seed study's balancing: one random-question negative for every two answerable training questions (the
    # training data as the job sees it: without the article held out for calibration).
    data = load_job_data(JobConfig(train_data=str(sample / TRAIN_SAMPLE), eval_data=str(sample / VALIDATION_SAMPLE),
                                   calibration_articles=1))
    answerable = sum(bool(example.answers) for example in data.train)
    assert metrics["synthetic_negatives"] == round(0.5 * answerable) > 100
    assert metrics["eval_questions"] == 12 and metrics["train_steps"] == 4
    assert metrics["bench_torch_questions_per_s"] > 0 and "onnx_max_abs_logit_diff" not in metrics
    saved = json.loads((directory / "out" / "model" / "shots.json").read_text())
    assert len(saved) == 2 and all(shot["question"] and shot["answer"] for shot in saved)
    path = mlflow.MlflowClient().download_artifacts(result["run_id"], "evaluation/na_probs.json", str(directory))
    probabilities = json.loads(open(path).read())
    assert len(set(probabilities.values())) > 5 and all(0 <= p <= 1 for p in probabilities.values())
    for name in ("best_exact", "best_f1", "no_answer_threshold", "answer_all_f1"):
        assert name in metrics, name


def test_the_generation_benchmark_logs_one_run(store, monkeypatch, capsys):
    import mlflow

    directory, uri = store
    monkeypatch.chdir(directory)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert benchmark_main(["--preset", "tiny", "--prompt-length", "16", "--generated-tokens", "4",
                           "--batch-sizes", "1,2", "--repeats", "1", "--experiment", "generation"]) == 0
    assert "decode_tokens_per_s_b2" in capsys.readouterr().out
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["generation"], output_format="list")
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["squad_qa.kind"] == "generation-benchmark" and run.data.tags["code_path"] == "reference"
    assert run.data.params["bench.prompt_length"] == "16" and run.data.params["model.hidden_size"] == "32"
    assert run.data.metrics["generate_tokens_per_s_b2"] > 0 and run.data.metrics["prompt_tokens_per_s_b1"] > 0
    assert benchmark_main(["--preset", "tiny", "--prompt-lenght", "16", "--experiment", ""]) == 2
    assert "unknown setting(s) prompt_lenght" in capsys.readouterr().err
