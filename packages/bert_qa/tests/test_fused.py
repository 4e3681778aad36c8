"""bert_qa.fused.PackedBertQA: the same logits and answers as transformers' BertForQuestionAnswering.

On a CPU the packed forward attends window by window through SDPA (varlen flash attention is CUDA-only); the
CUDA test compares the varlen path with transformers' padded one on the GPU.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bert_qa.fused import PackedBertQA, supports
from qa_common.adapter import get_adapter
from qa_common.data.readers import load_squad
from qa_common.extractive import REFERENCE_OPTIONS, InferenceOptions, TorchRunner, _packed_inputs

SAMPLE = "data/sample/validation-v2.0-sample.json"
SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
         "max_length": 128, "doc_stride": 32, "max_question_length": 32}


@pytest.fixture(scope="module")
def examples():
    return load_squad(SAMPLE).examples[:60]


@pytest.fixture(scope="module")
def model():
    adapter = get_adapter("bert_qa")
    built = adapter.build(adapter.config("tiny", SMALL))
    with torch.no_grad():
        built.module.qa_outputs.weight.mul_(40.0)  # separated candidates, as after training
    return built.to("cpu")


def _real_batch(model, examples):
    features = model.windows(examples, with_labels=False)
    lengths = features.lengths()
    assert lengths.min() < lengths.max()  # the batch has padding
    batch, _ = model.pack(features, np.arange(len(features)), int(lengths.max()))
    return batch


def test_padded_and_packed_forwards_give_transformers_logits_on_real_windows(model, examples) -> None:
    batch = _real_batch(model, examples)
    tensors = {name: torch.from_numpy(value) for name, value in batch.items()}
    real = tensors["attention_mask"].bool()
    packed = PackedBertQA(model.module.eval())
    with torch.no_grad():
        reference = model.module(**tensors)
        padded = packed(**tensors)
        inputs, flat, (rows, length) = _packed_inputs(batch, torch.device("cpu"))
        logits = packed.forward_packed(**inputs)
    assert logits.shape == (int(real.sum()), 2)  # real tokens only
    for found, expected in ((padded.start_logits, reference.start_logits), (padded.end_logits, reference.end_logits),
                            (logits[:, 0], reference.start_logits.reshape(-1)[flat]),
                            (logits[:, 1], reference.end_logits.reshape(-1)[flat])):
        expected = expected[real] if expected.dim() == 2 else expected
        found = found[real] if found.dim() == 2 else found
        assert expected.abs().max() > 1.0  # not a degenerate comparison
        torch.testing.assert_close(found, expected, atol=2e-5, rtol=1e-5)
    assert rows * length > len(flat)


def test_a_packed_runner_answers_as_the_reference_path(model, examples) -> None:
    reference = model.predict(examples, batch_size=16,
                              options=replace(REFERENCE_OPTIONS, sort_by_length=False, padding="max_length"))
    fast = PackedBertQA(model.module.eval())
    runner = TorchRunner(fast, packed=True)
    assert runner.packed
    calls = []
    forward_packed = fast.forward_packed
    fast.forward_packed = lambda *args, **kwargs: calls.append(1) or forward_packed(*args, **kwargs)
    original = model.runner
    try:
        model.runner = runner
        found = model.predict(examples, batch_size=16, options=InferenceOptions(max_batch_tokens=1024))
    finally:
        model.runner = original
    assert calls  # batches with padding went through the packed forward
    assert found.keys() == reference.keys()
    for qid, expected in reference.items():
        assert found[qid].text == expected.text, qid
        assert found[qid].no_answer_probability == pytest.approx(expected.no_answer_probability, abs=1e-5), qid
        assert [text for text, _ in found[qid].n_best] == [text for text, _ in expected.n_best], qid


def test_supports_refuses_a_student_with_pruning_masks_and_the_cpu_keeps_transformers() -> None:
    adapter = get_adapter("bert_qa")
    student = adapter.build(adapter.config("tiny", {**SMALL, "pruning": "smp", "density": 0.5}))
    assert "pruning masks" in supports(student.module)
    assert student.packed_module() is None
    with pytest.raises(ValueError, match="cannot read"):
        PackedBertQA(student.module)
    plain = adapter.build(adapter.config("tiny", SMALL)).to("cpu")
    assert isinstance(plain.packed_module(), PackedBertQA)
    plain.configure_inference(InferenceOptions())  # packed is for CUDA: the CPU runs transformers' module
    assert plain.runner.module is plain.module and not plain.runner.packed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="varlen flash attention needs CUDA")
def test_packed_bf16_on_cuda_is_as_close_to_fp32_as_transformers_bf16(model, examples) -> None:
    """On the GPU the packed path (varlen flash attention) and transformers' padded one round differently in
    bf16; both must be as close to the fp32 logits."""
    batch = _real_batch(model, examples)
    copies = {}
    for dtype in (torch.float32, torch.bfloat16):
        module = model.module.__class__(model.module.config)
        module.load_state_dict(model.module.state_dict())
        copies[dtype] = module.to("cuda", dtype).eval()
    tensors = {name: torch.from_numpy(value).cuda() for name, value in batch.items()}
    real = tensors["attention_mask"].bool()
    with torch.inference_mode():
        exact = copies[torch.float32](**tensors)
        plain = copies[torch.bfloat16](**tensors)
        runner = TorchRunner(PackedBertQA(copies[torch.bfloat16]), autocast=False, packed=True)
        assert runner.packed
        start, end = runner.logits_tensors(batch)
    for name, packed, transformers_bf16, fp32 in (("start", start, plain.start_logits, exact.start_logits),
                                                  ("end", end, plain.end_logits, exact.end_logits)):
        packed_error = (packed[real].float() - fp32[real]).abs().max().item()
        plain_error = (transformers_bf16[real].float() - fp32[real]).abs().max().item()
        print(f"{name} logits, max |bf16 - fp32|: packed {packed_error:.4f}, transformers {plain_error:.4f}")
        assert packed_error <= 2 * plain_error + 1e-3


def test_write_back_puts_the_trained_fused_projection_into_transformers_qkv(model, examples) -> None:
    adapter = get_adapter("bert_qa")
    built = adapter.build(adapter.config("tiny", SMALL)).to("cpu")
    packed = PackedBertQA(built.module)
    batch = _real_batch(built, examples[:8])
    tensors = {name: torch.from_numpy(value) for name, value in batch.items()}
    packed.train()
    optimizer = torch.optim.SGD([layer.qkv.weight for layer in packed.layers], lr=1.0)
    out = packed(**tensors)
    (out.start_logits.logsumexp(-1) - out.start_logits[:, 1]).mean().backward()
    optimizer.step()
    packed.eval()
    with torch.no_grad():
        trained = packed(**tensors).start_logits
        before = built.module.eval()(**tensors).start_logits
        packed.write_back()
        after = built.module(**tensors).start_logits
    real = tensors["attention_mask"].bool()
    assert (trained - before)[real].abs().max() > 1e-3  # the step changed the fused copy only
    torch.testing.assert_close(after[real], trained[real], atol=2e-5, rtol=1e-5)
