"""The generation benchmark runs on a CPU with the tiny model (its MLflow run: test_job.py)."""

import pytest

from mamba_qa.benchmark import GenerationBenchmark, benchmark_generation
from qa_common.adapter import get_adapter


def test_generation_figures_of_the_tiny_model():
    adapter = get_adapter("mamba_qa")
    lm = adapter.build(adapter.config("tiny")).language_model().eval()
    figures = benchmark_generation(lm, GenerationBenchmark(prompt_length=24, generated_tokens=6, batch_sizes=(1, 3),
                                                           repeats=1))
    for batch in (1, 3):
        for name in ("prompt_processing_ms", "prompt_tokens_per_s", "decode_tokens_per_s",
                     "generate_tokens_per_s", "ms_per_decoding_step"):
            assert figures[f"{name}_b{batch}"] > 0, (name, batch)
        assert figures[f"prompt_tokens_per_s_b{batch}"] == pytest.approx(
            batch * 24 / (figures[f"prompt_processing_ms_b{batch}"] / 1000))
    assert figures["peak_process_rss_mb"] > 50
    with pytest.raises(ValueError, match="engine mamba_ssm runs on CUDA only"):
        benchmark_generation(lm, GenerationBenchmark(engine="mamba_ssm"))
    with pytest.raises(ValueError, match="cuda_graphs needs engine mamba_ssm"):
        benchmark_generation(lm, GenerationBenchmark(cuda_graphs=True))


def test_a_random_model_takes_a_larger_vocabulary_than_its_tokenizer():
    # Mamba-130M-sized benchmarks need its 50,280-row output layer, not the tiny tokenizer's 4,096.
    adapter = get_adapter("mamba_qa")
    lm = adapter.build(adapter.config("tiny", {"vocab_size": 5000})).language_model()
    assert lm.get_input_embeddings().weight.shape[0] == 5000 == lm.config.vocab_size
    with pytest.raises(ValueError, match="smaller than the tokenizer's 4096 tokens"):
        adapter.build(adapter.config("tiny", {"vocab_size": 100}))
