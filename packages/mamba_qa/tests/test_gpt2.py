"""GPT-2 through mamba_qa's causal-LM reader and the shared job (the seed study's peft-gpt2): left-padded batches
answer as single prompts do, LoRA trains only its adapters and saves, reloads and merges, and the training job
runs the tiny LoRA preset end to end."""

import pytest
import torch

from qa_common.adapter import get_adapter
from qa_common.testing.contract import (
    TRAIN_SAMPLE,
    VALIDATION_SAMPLE,
    LearningCheck,
    assert_lora_saves_reloads_and_merges,
    assert_same_predictions,
    learning_examples,
    mean_loss,
    sample_directory,
    train_briefly,
)


@pytest.fixture(scope="module")
def adapter():
    return get_adapter("mamba_qa")


def test_a_random_gpt2_answers_the_same_in_left_padded_batches_as_alone(adapter):
    torch.manual_seed(0)
    model = adapter.build(adapter.config("tiny-gpt2"))
    assert model.language_model().config.model_type == "gpt2" and not model.is_mamba
    assert not hasattr(model.language_model(), "_squad_qa_kernel_switch")
    examples = learning_examples(6)
    assert_same_predictions(model.predict(examples, batch_size=6), model.predict(examples, batch_size=1), atol=1e-5)


def test_gpt2_lora_trains_its_adapters_and_saves_reloads_and_merges(adapter, tmp_path):
    # A random GPT-2's tied output layer is too small for adapters to move its loss: the base is first fine-tuned
    # (all weights) on some questions and saved as a checkpoint directory, as gpt2 is on the hub.
    torch.manual_seed(0)
    examples = learning_examples(20)
    base = adapter.build(adapter.config("tiny-gpt2"))
    train_briefly(base, examples[:16], LearningCheck(steps=40, learning_rate=1e-2, batch_size=8))
    base.module.save_pretrained(tmp_path / "base")
    base.tokenizer.save_pretrained(tmp_path / "base")

    config = adapter.config("gpt2-lora", {"model_name": str(tmp_path / "base"), "lora_rank": 4, "lora_alpha": 8,
                                          "lora_dropout": 0.0, "max_length": 128, "doc_stride": 32, "shots": 0,
                                          "negatives_ratio": 0.0, "max_question_length": 32,
                                          "max_answer_tokens": 16})
    torch.manual_seed(0)
    model = adapter.build(config)
    assert model.parameter_counts().trainable == 2 * 4 * (32 + 96)  # c_attn (32 -> 3 x 32) of the 2 blocks
    unseen = examples[16:]
    frozen = {name: weight.clone() for name, weight in model.language_model().named_parameters()
              if not weight.requires_grad}
    before = mean_loss(model, unseen)
    # lr 3e-2 made the loss swing by a whole nat from step to step, so whether 30 steps ended below 0.8x
    # depended on the thread count (5.78 on two threads, 6.37 on one); at 1e-2 60 steps end at 5.70-5.72.
    train_briefly(model, unseen, LearningCheck(steps=60, learning_rate=1e-2, batch_size=4))
    assert mean_loss(model, unseen) < 0.8 * before
    assert all(torch.equal(weight, frozen[name]) for name, weight in model.language_model().named_parameters()
               if name in frozen)
    assert_lora_saves_reloads_and_merges(model, adapter, config, unseen, tmp_path)


def test_the_shared_job_fine_tunes_gpt2_with_lora(tmp_path, monkeypatch):
    import mlflow

    from qa_common.jobs.train import run_job

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    sample = sample_directory()
    result = run_job("mamba_qa", "tiny-gpt2-lora", {
        "train_data": str(sample / TRAIN_SAMPLE), "eval_data": str(sample / VALIDATION_SAMPLE),
        "calibration_articles": 1, "max_eval_examples": 6, "max_steps": 2, "batch_size": 8,
        "system_metrics": False, "register": False, "benchmark": False, "output_dir": str(tmp_path / "out")})
    run = mlflow.get_run(result["run_id"])
    assert run.data.tags["preset"] == "tiny-gpt2-lora" and run.data.params["model.model_type"] == "gpt2"
    assert run.data.metrics["train_steps"] == 2 and run.data.metrics["eval_questions"] == 6
    assert (tmp_path / "out" / "model" / "adapter" / "adapter_model.safetensors").is_file()
    # The prompting study loads what the job saved (before/after fine-tuning in one table).
    from qa_common.causal_lm import greedy_generate, load_causal_lm
    from qa_common.jobs.prompt_eval import PromptEvalConfig, resolve_models

    tuned = load_causal_lm(tmp_path / "out" / "model", device="cpu")
    assert tuned.source == "lora-adapter" and tuned.model_type == "gpt2"
    for given in (result["run_id"], f"runs:/{result['run_id']}/model"):  # a run id, or the logged model's URI
        ((_, directory, run_id),) = resolve_models(PromptEvalConfig(models=(given,)))
        assert run_id == result["run_id"] and load_causal_lm(directory, device="cpu").source == "lora-adapter"
    prompt = tuned.tokenizer("Denver won.\n\nQ: Who won?\nA:")["input_ids"]
    assert len(greedy_generate(tuned.module, prompt, stop_ids=[], max_new_tokens=3, min_new_tokens=3).token_ids) == 3
