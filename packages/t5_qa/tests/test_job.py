"""The shared job trains, calibrates, evaluates, saves, exports to ONNX and logs a tiny t5_qa model (LoRA: the
variant whose logged figures differ most from full fine-tuning, and whose export merges the adapters)."""

import json

import pandas as pd
import pytest

from qa_common.jobs.train import run_job
from qa_common.testing.contract import TRAIN_SAMPLE, VALIDATION_SAMPLE, sample_directory, sample_examples


@pytest.mark.parametrize("preset", ["tiny-lora"])
def test_the_job_trains_and_logs_a_t5_reader(preset, tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    sample = sample_directory()
    result = run_job("t5_qa", preset, {
        "train_data": str(sample / TRAIN_SAMPLE), "eval_data": str(sample / VALIDATION_SAMPLE),
        "max_eval_examples": 32, "max_steps": 8, "batch_size": 32, "learning_rate": 1e-2, "system_metrics": False,
        "register": False, "benchmark": True, "benchmark_examples": 8, "output_dir": str(tmp_path / "out")})
    run = mlflow.get_run(result["run_id"])
    metrics, params = run.data.metrics, run.data.params
    assert run.data.tags["adapter"] == "t5_qa" and params["model.variant"] == "lora"
    assert metrics["eval_questions"] == 32
    assert 0 < metrics["parameters_trainable"] < 0.05 * metrics["parameters_total"]
    assert metrics["train_features_per_s"] > 0 and metrics["train_steps"] == 8
    # On a GPU the CUDA peak of training; on a CPU the process's peak resident memory (an upper bound).
    assert metrics.get("peak_training_memory_bytes", metrics.get("peak_process_rss_bytes", 0)) > 1e6
    # What would be deployed: the frozen base and the adapter, the adapter a small part of it.
    assert 0 < metrics["adapter_size_bytes"] < 0.1 * metrics["model_size_bytes"]
    # The LoRA model is exported merged; ONNX Runtime decodes the evaluation questions as PyTorch does.
    assert metrics["onnx_max_abs_logit_diff"] < 1e-3 and metrics["onnx_parity_questions"] == 32
    assert metrics["onnx_generation_mismatches"] == metrics["onnx_answer_mismatches"] == 0
    assert metrics["onnx_max_abs_no_answer_probability_diff"] < 1e-4
    assert metrics["bench_torch_questions_per_s"] > 0 and metrics["bench_onnx_questions_per_s"] > 0
    # The logged ONNX variant (the graphs and tokenizer, no PyTorch weights) serves the same answers.
    records = pd.DataFrame([{"question": e.question, "context": e.context}
                            for e in sample_examples(VALIDATION_SAMPLE)[:8]])
    on_torch = mlflow.pyfunc.load_model(result["model_uri"]).predict(records)
    onnx_pyfunc = mlflow.pyfunc.load_model(f"runs:/{result['run_id']}/model_onnx")
    assert onnx_pyfunc.unwrap_python_model().service.model.onnx is not None
    on_onnx = onnx_pyfunc.predict(records)
    assert list(on_onnx["answer"]) == list(on_torch["answer"])
    assert (on_onnx["no_answer_probability"] - on_torch["no_answer_probability"]).abs().max() < 1e-4
    # The no-answer probabilities come from the model's scores: they spread, so calibration has something to cut.
    client = mlflow.MlflowClient()
    path = client.download_artifacts(result["run_id"], "evaluation/na_probs.json", str(tmp_path))
    probabilities = json.loads(open(path).read())
    assert len(set(probabilities.values())) > 10 and all(0 <= p <= 1 for p in probabilities.values())
    for name in ("best_exact", "best_f1", "best_exact_thresh", "no_answer_threshold", "answer_all_f1"):
        assert name in metrics, name
