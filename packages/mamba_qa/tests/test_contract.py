"""mamba_qa against the contract every architecture meets (qa_common.testing.contract), and its own checks on the
model the contract trained: loading a checkpoint directory, LoRA, merging."""

from pathlib import Path

import pytest
import torch

from mamba_qa.model import IGNORED
from mamba_qa.prompts import answer_from_generation
from qa_common.adapter import load_model
from qa_common.decoding.generated import align_to_context
from qa_common.testing.contract import (
    AdapterContract,
    LearningCheck,
    assert_lora_saves_reloads_and_merges,
    assert_same_predictions,
    learning_examples,
    mean_loss,
    save_model,
    train_briefly,
)

# The trained tiny model's settings, given to a preset that loads a checkpoint directory instead.
TINY_PROMPTS = {"shots": 0, "negatives_ratio": 0.0, "max_length": 128, "doc_stride": 32, "max_question_length": 32,
                "max_answer_tokens": 16}


class TestMambaContract(AdapterContract):
    adapter_name = "mamba_qa"
    preset = "tiny"
    learning_overrides = {"steps": 40, "learning_rate": 1e-2}

    def labelled_answers(self, model, examples):
        """Each window's labels: exactly its target tokens after a prompt left out of the loss, read back as text;
        the no-answer text is None."""
        dataset = model.training_dataset(examples)
        labelled = []
        for index, target in enumerate(dataset.features.targets):
            item = dataset[index]
            prompt_length = len(dataset.features.prompt_ids[index])
            assert item["labels"][:prompt_length] == [IGNORED] * prompt_length
            assert item["labels"][prompt_length:] == model.target_ids(target) == item["input_ids"][prompt_length:]
            example_index = dataset.features.example_index[index]
            answer = answer_from_generation(model.tokenizer.decode(item["labels"][prompt_length:],
                                                                   skip_special_tokens=True),
                                            model.config.no_answer_text)
            labelled.append((example_index, align_to_context(answer, examples[example_index].context) or None))
        return labelled

    # -- mamba_qa's own checks on the model the contract trained ----------------------------------------------

    @pytest.fixture(scope="class")
    def checkpoint(self, trained, tmp_path_factory) -> Path:
        """The trained tiny Mamba as an ordinary transformers checkpoint directory, as mamba-130m-hf is on the hub."""
        directory = tmp_path_factory.mktemp("mamba-checkpoint")
        trained.model.module.save_pretrained(directory)
        trained.model.tokenizer.save_pretrained(directory)
        return directory

    def test_a_checkpoint_directory_loads_through_the_pretrained_path(self, adapter, checkpoint, examples,
                                                                      predictions):
        config = adapter.config("mamba-130m", {"model_name": str(checkpoint), **TINY_PROMPTS})
        model = adapter.build(config)
        assert config.from_pretrained and model.module.config.hidden_size == 32
        assert_same_predictions(model.predict(examples, batch_size=8), predictions, atol=1e-6)

    def test_a_checkpoint_of_another_architecture_is_refused(self, adapter, tmp_path):
        from transformers import GPT2Config

        GPT2Config(n_layer=1, n_embd=8, n_head=1).save_pretrained(tmp_path)
        with pytest.raises(ValueError, match="is a 'gpt2' checkpoint; mamba_qa loads Mamba"):
            adapter.build(adapter.config("mamba-130m", {"model_name": str(tmp_path), "tokenizer_name": "tiny-bpe"}))

    def test_a_pickled_checkpoint_is_refused(self, adapter, trained, tmp_path):
        directory = save_model(trained.model, adapter, trained.config, tmp_path / "model")
        assert not [path for path in directory.rglob("*") if path.suffix in (".bin", ".pt", ".pth", ".pkl")]
        (directory / "model" / "model.safetensors").rename(directory / "model" / "pytorch_model.bin")
        with pytest.raises(OSError, match="safetensors"):
            load_model(directory)

    def test_lora_trains_the_configured_share_and_merged_equals_unmerged(self, adapter, checkpoint, tmp_path):
        config = adapter.config("tiny-lora", {"model_name": str(checkpoint), "tokenizer_name": "",
                                              "from_pretrained": True, "lora_rank": 4, "lora_alpha": 8,
                                              "lora_dropout": 0.0, "lora_target_modules": "in_proj,x_proj"})
        torch.manual_seed(0)
        model = adapter.build(config)
        counts = model.parameter_counts()
        # rank x (in + out) per adapted linear of each of the 2 blocks: in_proj 32 -> 128, x_proj 64 -> 2 + 2 x 8
        # (time-step rank 2, state 8).
        per_block = 4 * (32 + 128) + 4 * (64 + 18)
        assert counts.trainable == 2 * per_block
        assert counts.total == 2 * per_block + sum(p.numel() for p in model.language_model().parameters()
                                                   if not p.requires_grad)

        # Questions the base has not seen: only the adapters train. (On this 32-d base, adapters on in_proj and
        # x_proj halve the loss in seconds but need far longer to write new answers, so F1 is not checked here.)
        examples = learning_examples(20)[16:]
        frozen = {name: weight.clone() for name, weight in model.language_model().named_parameters()
                  if not weight.requires_grad}
        loss_before = mean_loss(model, examples)
        train_briefly(model, examples, LearningCheck(steps=30, learning_rate=3e-2, batch_size=4))
        loss_after = mean_loss(model, examples)
        assert loss_after < 0.6 * loss_before, (loss_before, loss_after)
        assert all(torch.equal(weight, frozen[name]) for name, weight in model.language_model().named_parameters()
                   if name in frozen)
        assert_lora_saves_reloads_and_merges(model, adapter, config, examples, tmp_path)

    def test_lora_on_layers_mamba_never_calls_is_refused(self, adapter):
        for target in ("dt_proj", "out_proj", "conv1d", "q"):
            with pytest.raises(ValueError, match=f"lora_target_modules {target}: LoRA can adapt in_proj"):
                adapter.build(adapter.config("tiny-lora", {"lora_target_modules": target}))
