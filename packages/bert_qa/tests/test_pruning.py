"""Static Model Pruning on a tiny BERT: masks at the requested density, frozen pretrained weights, and a pruned
model that plain ``transformers`` loads."""

from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForQuestionAnswering

from bert_qa.adapter import BertAdapter
from bert_qa.model import PruningSchedule
from bert_qa.pruning import MaskedLinear, encoder_linears, is_two_of_four, scheduled_density, to_semi_structured
from qa_common.testing.contract import LearningCheck, learning_examples, mean_loss, train_briefly


def smp_model(density, pattern="unstructured", **settings):
    adapter = BertAdapter()
    return adapter.build(adapter.config("tiny", {"pruning": "smp", "density": density,
                                                 "sparsity_pattern": pattern, **settings}))


@pytest.mark.parametrize("density", [0.1, 0.5, 0.9])
def test_masks_binarise_to_the_requested_density(density):
    model = smp_model(density)
    layers = encoder_linears(model.module)
    assert len(layers) == 12 and all(isinstance(layer, MaskedLinear) for layer in layers.values())
    for layer in layers.values():
        mask = layer.mask().detach()
        assert set(mask.unique().tolist()) <= {0.0, 1.0}
        assert abs(float(mask.mean()) - density) < 0.01


def test_the_2_of_4_pattern_keeps_two_of_every_four_weights_of_a_row():
    model = smp_model(0.5, "2:4")
    for layer in encoder_linears(model.module).values():
        groups = layer.mask().reshape(-1, 4)
        assert torch.equal(groups.sum(1), torch.full((groups.shape[0],), 2.0))
    with pytest.raises(ValueError, match="density must be 0.5"):
        smp_model(0.1, "2:4")


def test_the_cubic_schedule_keeps_everything_then_falls_to_the_target_and_holds_it():
    densities = [scheduled_density(step, 100, 0.1, warmup=0.1, cooldown=0.2) for step in range(101)]
    assert densities[:11] == [1.0] * 11 and densities[80:] == [0.1] * 21
    assert densities == sorted(densities, reverse=True)
    # halfway through the pruning steps (10..80): 0.1 + 0.9 x 0.5^3
    assert densities[45] == pytest.approx(0.1 + 0.9 * 0.125)
    with pytest.raises(ValueError, match="warmup and cooldown"):
        scheduled_density(0, 100, 0.1, warmup=0.6, cooldown=0.5)
    with pytest.raises(ValueError, match="warmup and cooldown"):
        smp_model(0.1, pruning_warmup=-0.1)


def test_the_schedule_moves_the_training_masks_but_the_evaluated_and_saved_mask_is_the_target():
    model = smp_model(0.1, pruning_schedule="cubic")
    (schedule,) = model.training_callbacks()
    assert isinstance(schedule, PruningSchedule)
    layer = encoder_linears(model.module)["bert.encoder.layer.0.output.dense"]
    inputs = torch.randn(2, layer.weight.shape[1])
    target_output = layer.eval()(inputs)
    kept = {}
    for step in (0, 40, 100):
        schedule.on_step_begin(None, SimpleNamespace(global_step=step, max_steps=100), None)
        kept[step] = layer.current_density
        training_mask = layer.mask(layer.current_density).detach()
        assert float(training_mask.mean()) == pytest.approx(layer.current_density, abs=0.01)
        assert torch.equal(layer.train()(inputs), target_output) == (step == 100)  # training: the scheduled mask
        assert torch.equal(layer.eval()(inputs), target_output)  # evaluation (and the saved model): the target
    assert kept == {0: 1.0, 40: pytest.approx(0.1 + 0.9 * (1 - 30 / 70) ** 3), 100: 0.1}
    assert smp_model(0.1).training_callbacks() == []  # "constant", the default
    # 2:4 has no schedule to follow: its layers keep 2 of every 4 weights from the first step.
    two_of_four = smp_model(0.5, "2:4", pruning_schedule="cubic")
    (schedule,) = two_of_four.training_callbacks()
    schedule.on_step_begin(None, SimpleNamespace(global_step=0, max_steps=100), None)
    for layer in encoder_linears(two_of_four.module).values():
        assert layer.current_density == 0.5 and float(layer.mask().mean()) == 0.5


def test_the_first_mask_is_magnitude_pruning():
    layer = encoder_linears(smp_model(0.25).module)["bert.encoder.layer.0.attention.self.query"]
    kept = layer.weight.abs()[layer.mask().bool()]
    dropped = layer.weight.abs()[~layer.mask().bool()]
    assert kept.min() >= dropped.max()


def test_training_moves_only_mask_scores_and_the_head_and_the_pruned_model_loads_with_plain_transformers(tmp_path):
    model = smp_model(0.3)
    module = model.module
    pretrained = {name: p.detach().clone() for name, p in module.named_parameters() if not name.endswith("mask_scores")}
    trainable = sorted(name for name, p in module.named_parameters() if p.requires_grad)
    assert trainable == sorted([*(f"{name}.mask_scores" for name in encoder_linears(module)),
                                "qa_outputs.weight", "qa_outputs.bias"])
    masks_before = {name: layer.mask().clone() for name, layer in encoder_linears(module).items()}
    examples = learning_examples(16)
    before = mean_loss(model, examples)
    train_briefly(model, examples, LearningCheck(steps=40, learning_rate=1e-2))
    assert mean_loss(model, examples) < before
    for name, parameter in module.named_parameters():
        if name in pretrained and not name.startswith("qa_outputs"):
            assert torch.equal(parameter, pretrained[name]), f"{name} changed"
    changed = sum(int((layer.mask() != masks_before[name]).sum()) for name, layer in encoder_linears(module).items())
    assert changed > 0  # the masks learned something

    masks = {name: layer.mask().bool() for name, layer in encoder_linears(module).items()}
    logits = module.eval()(**_batch(model)).start_logits
    assert model.finish_training() == {"pruned_layers": 12.0}
    assert not any(isinstance(child, MaskedLinear) for child in module.modules())
    assert torch.allclose(module(**_batch(model)).start_logits, logits, atol=1e-6)
    model.save(tmp_path)

    plain = AutoModelForQuestionAnswering.from_pretrained(tmp_path, use_safetensors=True).eval()
    assert not any("mask" in key for key in plain.state_dict())
    for name, mask in masks.items():
        weight = plain.get_submodule(name).weight
        original = pretrained[f"{name}.weight"]
        assert torch.equal(weight[mask], original[mask])  # bit for bit
        assert torch.count_nonzero(weight[~mask]) == 0
        assert torch.equal(plain.get_submodule(name).bias, pretrained[f"{name}.bias"])
    for name in ("bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.output.LayerNorm.weight"):
        assert torch.equal(plain.state_dict()[name], pretrained[name])
    assert torch.allclose(plain(**_batch(model)).start_logits, logits, atol=1e-6)

    figures = model.saved_figures(tmp_path)
    assert abs(figures["weight_density"] - 0.3) < 0.01
    assert figures["encoder_linear_weights"] == 2 * (4 * 64 * 64 + 2 * 64 * 128)
    assert 0 < figures["model_size_zip_bytes"] < (tmp_path / "model.safetensors").stat().st_size


def test_a_model_still_masked_is_not_saved(tmp_path):
    with pytest.raises(RuntimeError, match="finish_training"):
        smp_model(0.5).save(tmp_path)


def test_a_dense_model_reports_its_density_from_the_saved_weights(tmp_path):
    adapter = BertAdapter()
    model = adapter.build(adapter.config("tiny"))
    assert model.finish_training() == {}
    model.save(tmp_path)
    assert model.saved_figures(tmp_path)["weight_density"] == 1.0


def _batch(model):
    features = model.windows(learning_examples(4), with_labels=False)
    from qa_common.extractive import pad_batch

    items = [{"input_ids": ids, "attention_mask": [1] * len(ids)} for ids in features.input_ids]
    return {key: torch.from_numpy(value) for key, value in pad_batch(items, model.tokenizer.pad_token_id).items()}


def test_a_2_of_4_pruned_model_saves_2_of_4_weights_and_semi_structured_conversion_checks_its_input(tmp_path):
    model = smp_model(0.5, "2:4")
    model.finish_training()
    layers = encoder_linears(model.module)
    assert all(is_two_of_four(layer.weight) for layer in layers.values())
    assert not is_two_of_four(torch.ones(2, 8))
    model.save(tmp_path)
    assert model.saved_figures(tmp_path)["weight_density"] == 0.5
    # The conversion itself runs on CUDA only (scripts/bench_sparsity.py measures it on the GPU); here it refuses.
    with pytest.raises(ValueError, match="needs CUDA float16/bfloat16"):
        to_semi_structured(model.module)
    with pytest.raises(ValueError, match="apply the masks first"):
        to_semi_structured(smp_model(0.5, "2:4").module)


def _kept(model) -> dict[str, float]:
    return {name: float(layer.mask().mean()) for name, layer in encoder_linears(model.module).items()}


def test_global_masks_keep_the_density_over_all_matrices_and_training_moves_weights_between_them(tmp_path):
    model = smp_model(0.3, mask_scope="global")
    module = model.module
    layers = encoder_linears(module)
    sizes = {name: layer.weight.numel() for name, layer in layers.items()}

    def overall(kept):
        return sum(kept[name] * sizes[name] for name in kept) / sum(sizes.values())

    first = _kept(model)
    assert overall(first) == pytest.approx(0.3, abs=1e-4)
    # scores start relative to each matrix's mean magnitude: the first global mask is near 0.3 in every matrix
    assert all(abs(kept - 0.3) < 0.1 for kept in first.values())
    pretrained = {name: p.detach().clone() for name, p in module.named_parameters() if not name.endswith("mask_scores")}
    examples = learning_examples(16)
    before = mean_loss(model, examples)
    train_briefly(model, examples, LearningCheck(steps=40, learning_rate=1e-2))
    assert mean_loss(model, examples) < before
    trained = _kept(model)
    assert overall(trained) == pytest.approx(0.3, abs=1e-4)
    assert max(abs(trained[name] - first[name]) for name in trained) > 0.01  # weights moved between matrices
    for name, parameter in module.named_parameters():
        if name in pretrained and not name.startswith("qa_outputs"):
            assert torch.equal(parameter, pretrained[name]), f"{name} changed"

    # Scores moved after the last forward (as an optimizer step moves them) count when the masks are applied.
    boosted = "bert.encoder.layer.1.intermediate.dense"
    with torch.no_grad():
        layers[boosted].mask_scores.add_(1e3 / layers[boosted].score_scale)  # above every other score
    model.finish_training()
    model.save(tmp_path)
    figures = model.saved_figures(tmp_path)
    assert figures["weight_density"] == pytest.approx(0.3, abs=0.01)
    plain = AutoModelForQuestionAnswering.from_pretrained(tmp_path, use_safetensors=True)
    assert float((plain.get_submodule(boosted).weight != 0).float().mean()) == 1.0
    assert figures["weight_density_max_matrix"] == 1.0 and figures["weight_density_min_matrix"] < 0.3


def test_the_global_scope_is_checked():
    with pytest.raises(ValueError, match="mask scope"):
        smp_model(0.5, "2:4", mask_scope="global")
    with pytest.raises(ValueError, match="mask_scope"):
        smp_model(0.5, mask_scope="everywhere")
