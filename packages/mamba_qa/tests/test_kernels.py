"""The fused CUDA kernels and the PyTorch reference path: choosing between them, and (where both exist) agreeing."""

import importlib
import inspect

import pytest
import torch

from mamba_qa.kernels import (
    KERNEL_FUNCTIONS,
    choose_kernels,
    missing_for_fused_kernels,
    reference_path,
)
from qa_common.adapter import get_adapter
from qa_common.testing.contract import LearningCheck, learning_examples, train_briefly

MAMBA = importlib.import_module("transformers.models.mamba.modeling_mamba")
FUSED_HERE = not missing_for_fused_kernels()
needs_kernels = pytest.mark.skipif(not FUSED_HERE, reason="needs CUDA with mamba-ssm and causal-conv1d: "
                                   + "; ".join(missing_for_fused_kernels()))


def test_the_reference_path_swaps_in_the_pytorch_functions_and_puts_the_bound_ones_back():
    bound = {name: getattr(MAMBA, name) for name in KERNEL_FUNCTIONS}
    with reference_path():
        for name in KERNEL_FUNCTIONS:
            assert getattr(MAMBA, name) is inspect.unwrap(bound[name])
            assert getattr(MAMBA, name).__module__ == MAMBA.__name__
    assert {name: getattr(MAMBA, name) for name in KERNEL_FUNCTIONS} == bound
    with pytest.raises(ValueError, match="not Mamba kernel functions: selective_scan_fn"):
        with reference_path(["selective_scan_fn"]):
            pass


def test_a_model_off_cuda_runs_the_reference_path_and_fused_refuses_clearly():
    assert choose_kernels("auto", "cpu").fused is False
    assert choose_kernels("auto", "cpu").reason == "the model is on cpu"
    assert choose_kernels("reference", "cuda").fused is False
    with pytest.raises(RuntimeError, match="kernels 'fused' cannot run: the model is on cpu"):
        choose_kernels("fused", "cpu")
    adapter = get_adapter("mamba_qa")
    model = adapter.build(adapter.config("tiny"))
    switch = model.language_model()._squad_qa_kernel_switch
    model.predict(learning_examples(1))
    assert switch.last_choice.fused is False
    # One switch per module, however many models wrap it.
    again = type(model)(model.module, model.tokenizer, model.config)
    assert again.language_model()._squad_qa_kernel_switch is switch
    assert len(model.language_model()._forward_pre_hooks) == 1


@pytest.mark.skipif(FUSED_HERE, reason="checks the error a machine without the kernels gives")
def test_kernels_fused_fails_clearly_without_them():
    adapter = get_adapter("mamba_qa")
    with pytest.raises(RuntimeError, match=r"kernels 'fused' needs a CUDA GPU with mamba-ssm and causal-conv1d"):
        adapter.build(adapter.config("tiny", {"kernels": "fused"}))


@needs_kernels
def test_fused_kernels_and_the_reference_path_agree():
    adapter = get_adapter("mamba_qa")
    torch.manual_seed(0)
    model = adapter.build(adapter.config("tiny", {"kernels": "fused", "hidden_size": 64})).to("cuda")
    examples = learning_examples(8)
    batch = next(iter(torch.utils.data.DataLoader(model.training_dataset(examples), batch_size=8,
                                                  collate_fn=model.data_collator())))
    batch = {key: value.cuda() for key, value in batch.items()}
    lm = model.language_model()

    def forward_and_gradients():
        lm.zero_grad()
        lm.train()
        loss = lm(**batch).loss  # training's fused block (mamba_inner_fn)
        loss.backward()
        gradients = {name: p.grad.clone() for name, p in lm.named_parameters()}
        lm.eval()
        with torch.no_grad():
            logits = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        return loss.item(), gradients, logits

    fused_loss, fused_gradients, fused_logits = forward_and_gradients()
    assert lm._squad_qa_kernel_switch.last_choice.fused
    with reference_path():
        reference_loss, reference_gradients, reference_logits = forward_and_gradients()
    assert fused_loss == pytest.approx(reference_loss, rel=1e-4)
    assert (fused_logits - reference_logits).abs().max() < 1e-3
    for name, gradient in fused_gradients.items():
        assert torch.allclose(gradient, reference_gradients[name], rtol=1e-3, atol=1e-4), name
    # Decoding: the one-step conv and state update, through the whole predict path.
    fused = model.predict(examples)
    with reference_path():
        reference = model.predict(examples)
    for qid, prediction in fused.items():
        assert prediction.text == reference[qid].text
        assert prediction.no_answer_probability == pytest.approx(reference[qid].no_answer_probability, abs=1e-3)


@needs_kernels
def test_lora_on_x_proj_trains_with_the_fused_kernels():
    adapter = get_adapter("mamba_qa")
    torch.manual_seed(0)
    model = adapter.build(adapter.config("tiny-lora", {"kernels": "fused"})).to("cuda")
    x_proj_b = [p for name, p in model.module.named_parameters() if "x_proj.lora_B" in name]
    train_briefly(model, learning_examples(4), LearningCheck(steps=3, learning_rate=1e-2, batch_size=4))
    # lora_B starts at zero: it moved only if x_proj's adapter took part in the forward pass.
    assert all(p.abs().sum() > 0 for p in x_proj_b)


@needs_kernels
def test_mamba_ssm_holds_the_same_model():
    from mamba_qa.benchmark import to_mamba_ssm

    adapter = get_adapter("mamba_qa")
    torch.manual_seed(0)
    lm = adapter.build(adapter.config("tiny", {"hidden_size": 64})).language_model().cuda().eval()
    converted = to_mamba_ssm(lm, torch.float32)
    input_ids = torch.randint(1, lm.config.vocab_size, (2, 48), device="cuda")
    with torch.no_grad():
        expected = lm(input_ids=input_ids).logits
        actual = converted(input_ids).logits[..., : lm.config.vocab_size]
    assert (expected - actual).abs().max() < 1e-3
