"""The fast inference path of extractive readers against the reference one, on real SQuAD windows.

Fast: windows sorted by length in token-budget batches padded to a multiple of 8 (or to static buckets), spans
selected with torch (`top_window_spans_torch`). Reference: fixed-size batches padded to max_length, all logits to
numpy, spans selected with `top_window_spans`. Both must give the same answers and null scores.

`bert_qa.fused.PackedBertQA` (fused Q/K/V, unpadded batches) must give transformers' logits and answers. On a CPU
its packed forward attends window by window through SDPA (varlen flash attention is CUDA-only); the CUDA test
compares the varlen path's bf16 error with transformers' own.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from bert_qa.fused import PackedBertQA, computes_in_half, supports
from qa_common.adapter import get_adapter
from qa_common.attention import use_unpadded_sdpa
from qa_common.data.readers import load_squad
from qa_common.decoding.spans import top_window_spans, top_window_spans_torch
from qa_common.extractive import REFERENCE_OPTIONS, InferenceOptions, PackedBatch, TorchRunner

SAMPLE = "data/sample/validation-v2.0-sample.json"
# Windows of 128 tokens, stride 32: about a third of the sample's questions get two or more windows.
SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
         "max_length": 128, "doc_stride": 32, "max_question_length": 32}


@pytest.fixture(scope="module")
def examples():
    return load_squad(SAMPLE).examples[:80]


@pytest.fixture(scope="module")
def model():
    adapter = get_adapter("bert_qa")
    built = adapter.build(adapter.config("tiny", SMALL))
    # Random weights give flat logits and many tied spans; larger ones separate the candidates as training does.
    with torch.no_grad():
        built.module.qa_outputs.weight.mul_(40.0)
    return built.to("cpu")


def _assert_same_predictions(expected, actual) -> None:
    assert expected.keys() == actual.keys()
    for qid, reference in expected.items():
        fast = actual[qid]
        assert fast.text == reference.text, qid
        assert fast.no_answer_probability == pytest.approx(reference.no_answer_probability, abs=1e-5), qid
        assert fast.score == pytest.approx(reference.score, abs=1e-5), qid
        assert [text for text, _ in fast.n_best] == [text for text, _ in reference.n_best], qid


@pytest.mark.parametrize("span_scores", ["logits", "window_probabilities"])
def test_torch_span_selection_equals_the_numpy_reference_on_real_windows(model, examples, span_scores) -> None:
    features = model.windows(examples, with_labels=False)
    assert len(features) > len(examples)  # several windows for some questions
    indices = np.arange(len(features))
    batch, is_context = model.pack(features, indices, int(features.lengths().max()))
    start, end = model.runner(batch)
    reference = top_window_spans(start, end, is_context, batch["attention_mask"], n_best=20, max_answer_length=30,
                                 span_scores=span_scores)
    fast = top_window_spans_torch(torch.from_numpy(start), torch.from_numpy(end), torch.from_numpy(is_context),
                                  torch.from_numpy(batch["attention_mask"]), n_best=20, max_answer_length=30,
                                  span_scores=span_scores)
    np.testing.assert_allclose(fast.null_score, reference.null_score, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fast.score, reference.score, rtol=1e-6, atol=1e-6)  # float32, best first
    finite = np.isfinite(reference.score)
    assert finite.sum() > 0.9 * finite.size
    np.testing.assert_array_equal(fast.start_token[finite], reference.start_token[finite])
    np.testing.assert_array_equal(fast.end_token[finite], reference.end_token[finite])
    np.testing.assert_allclose(fast.probability[finite], reference.probability[finite], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("options", [
    InferenceOptions(max_batch_tokens=1024),  # token budget, longest first, multiple of 8, spans on the device
    InferenceOptions(decode="reference", pad_to_multiple=1),  # the previous default path
    InferenceOptions(cuda_graphs=True, static_length_multiple=64),  # static buckets: filler rows, longer padding
    InferenceOptions(max_batch_tokens=1024, chunk_questions=7),  # chunks overlapped with the GPU's work
], ids=["token-budget", "sorted-reference-decode", "static-shapes", "chunks-of-7"])
def test_fast_predictions_equal_the_fixed_padding_reference(model, examples, options) -> None:
    reference = model.predict(examples, batch_size=16,
                              options=replace(REFERENCE_OPTIONS, sort_by_length=False, padding="max_length"))
    fast = model.predict(examples, batch_size=16, options=options)
    _assert_same_predictions(reference, fast)
    assert sum(bool(p.text) for p in fast.values()) > 0.9 * len(examples)


def test_batch_plan_pads_each_batch_to_its_own_longest_window_within_the_token_budget(model) -> None:
    lengths = np.array([100, 17, 60, 128, 33, 9, 61, 127])
    plan = model.batch_plan(lengths, 32, InferenceOptions(max_batch_tokens=256))
    assert [(list(map(int, idx)), length, rows) for idx, length, rows in plan] == [
        ([3, 7], 128, 2), ([0, 6], 104, 2), ([2, 4, 1, 5], 64, 4)]
    fixed = model.batch_plan(lengths, 3, replace(REFERENCE_OPTIONS, sort_by_length=False, padding="max_length"))
    assert [(list(map(int, idx)), length) for idx, length, _ in fixed] == [
        ([0, 1, 2], 128), ([3, 4, 5], 128), ([6, 7], 128)]
    static = model.batch_plan(lengths, 3, InferenceOptions(cuda_graphs=True))
    assert [(length, rows) for _, length, rows in static] == [(128, 4), (64, 4), (32, 2)]
    # Under CUDA graphs only the batches small enough to be graphed take static shapes.
    mixed = model.batch_plan(lengths, 3, InferenceOptions(cuda_graphs=True, cuda_graph_max_batch=2))
    assert [(length, rows) for _, length, rows in mixed] == [(128, 3), (64, 3), (32, 2)]


def test_configure_inference_keeps_fp32_and_eager_on_a_cpu(examples) -> None:
    adapter = get_adapter("bert_qa")
    built = adapter.build(adapter.config("tiny", SMALL)).to("cpu")
    applied = built.configure_inference(InferenceOptions(precision="bf16", compile=True, cuda_graphs=True))
    assert applied == {"precision": "fp32", "compile": "off", "cuda_graphs": "off"}
    assert next(built.module.parameters()).dtype == torch.float32
    assert built.runner.compiled is None


@pytest.mark.skipif(not hasattr(torch, "compile"), reason="no torch.compile")
def test_compiled_runner_agrees_with_eager(model, examples) -> None:
    """torch.compile of a one-layer reader on the CPU (inductor, C++ codegen): the same logits as eager."""
    adapter = get_adapter("bert_qa")
    small = adapter.build(adapter.config("tiny", {**SMALL, "num_hidden_layers": 1, "hidden_size": 32,
                                                   "intermediate_size": 32})).to("cpu")
    features = small.windows(examples[:8], with_labels=False)
    batch, _ = small.pack(features, np.arange(len(features)), 128)
    eager = TorchRunner(small.module)(batch)
    try:
        compiled = TorchRunner(small.module, compile=True, compile_mode="default")
        found = compiled(batch)
    except Exception as error:  # noqa: BLE001 - a CPU without a working C++ toolchain cannot compile
        pytest.skip(f"torch.compile unusable here: {error}")
    if compiled.compiled is None:
        pytest.skip("torch.compile fell back to eager on this machine")
    np.testing.assert_allclose(found[0], eager[0], atol=1e-4)
    np.testing.assert_allclose(found[1], eager[1], atol=1e-4)


def test_unpadded_sdpa_gives_the_same_logits_with_and_without_padding() -> None:
    adapter = get_adapter("bert_qa")
    module = adapter.build(adapter.config("tiny", SMALL)).module.eval()
    ids = torch.randint(1000, 30000, (3, 40), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    mask[2, 10:] = 0
    with torch.no_grad():
        padded, unpadded = module(input_ids=ids, attention_mask=mask), module(input_ids=ids)
        assert use_unpadded_sdpa(module)
        torch.testing.assert_close(module(input_ids=ids, attention_mask=mask).start_logits, padded.start_logits)
        torch.testing.assert_close(module(input_ids=ids).end_logits, unpadded.end_logits)
        # Traced (as under torch.compile), no mask is built for the unpadded batch and the result is the same.
        traced = torch.compile(module, backend="eager")(input_ids=ids)
        torch.testing.assert_close(traced.start_logits, unpadded.start_logits)


def _pipeline_answers(model, examples, max_answer_length: int = 30) -> dict[str, str]:
    """transformers 4.57's ``pipeline("question-answering")`` decision, rewritten in numpy from its
    ``select_starts_ends``/``decode_spans``/``postprocess`` (top_k=1, handle_impossible_answer=True,
    align_to_words=False): per window, softmaxes over the context and [CLS], the null is the smallest
    p_start[CLS] x p_end[CLS], each window's best span by p_start x p_end; windows whose best spans have the same
    text (ignoring case) add their scores; the best answer wins unless the null scores higher."""
    features = model.windows(examples, with_labels=False)
    start_logits, end_logits = model.logits(features, batch_size=16)
    answers = {}
    for index, example in enumerate(examples):
        null, found = 1e6, []
        for feature in np.flatnonzero(features.example_index == index):
            allowed = features.offsets[feature][:, 0] >= 0
            allowed[0] = True
            length = len(allowed)
            start = np.where(allowed, start_logits[feature, :length], -10000.0)
            end = np.where(allowed, end_logits[feature, :length], -10000.0)
            start = np.exp(start - start.max()) / np.exp(start - start.max()).sum()
            end = np.exp(end - end.max()) / np.exp(end - end.max()).sum()
            null = min(null, float(start[0] * end[0]))
            start[0] = end[0] = 0.0
            outer = np.tril(np.triu(start[:, None] * end[None, :]), max_answer_length - 1)
            s, e = np.unravel_index(np.argmax(outer), outer.shape)
            offsets = features.offsets[feature]
            text = example.context[offsets[s][0]:offsets[e][1]]
            same = next((answer for answer in found if answer[0].lower() == text.lower()), None)
            if same:
                same[1] += float(outer[s, e])
            else:
                found.append([text, float(outer[s, e])])
        found.append(["", null])
        answers[example.id] = sorted(found, key=lambda answer: answer[1], reverse=True)[0][0]
    return answers


class _NullBoost:
    """A runner whose start and end logits at [CLS] are raised by ``boost``, so the null answer wins some
    questions (random weights give it none)."""

    def __init__(self, runner, boost: float):
        self.runner, self.boost = runner, boost

    def __call__(self, batch):
        start, end = self.runner(batch)
        start[:, 0] += self.boost
        end[:, 0] += self.boost
        return start, end

    def logits_tensors(self, batch):
        start, end = self.runner.logits_tensors(batch)
        return start.index_add(1, torch.tensor([0]), torch.full((len(start), 1), self.boost)), end.index_add(
            1, torch.tensor([0]), torch.full((len(end), 1), self.boost))


@pytest.mark.parametrize("null_wins", [False, True], ids=["spans-win", "null-wins-some"])
def test_window_probabilities_decide_as_the_qa_pipeline_does(model, examples, null_wins) -> None:
    """The side-by-side benchmark compares EM/F1 with transformers' pipeline: with ``span_scores`` set to the
    pipeline's rule, the same logits give the same answers; the default rule differs on multi-window questions."""
    if null_wins:
        model = copy.copy(model)
        features = model.windows(examples, with_labels=False)
        start, end = model.logits(features, batch_size=16)
        spans = top_window_spans(start, end, np.stack([np.pad(o[:, 0] >= 0, (0, start.shape[1] - len(o)))
                                                       for o in features.offsets]),
                                 np.isfinite(start), n_best=1)
        margin = np.median(spans.score[:, 0] - spans.null_score)  # half the windows' best spans beat the null
        model.runner = _NullBoost(model.runner, float(margin) / 2)
    expected = _pipeline_answers(model, examples)
    nulls = sum(text == "" for text in expected.values())
    assert (0 < nulls < len(expected)) if null_wins else nulls == 0
    for span_scores, decode in (("window_probabilities", "device"), ("window_probabilities", "reference")):
        predictions = model.predict(examples, batch_size=16,
                                    options=InferenceOptions(span_scores=span_scores, decode=decode))
        actual = {qid: p.text if p.no_answer_probability <= 0.5 else "" for qid, p in predictions.items()}
        assert actual == expected
    default = model.predict(examples, batch_size=16)
    differing = sum((p.text if p.no_answer_probability <= 0.5 else "") != expected[qid]
                    for qid, p in default.items())
    assert differing > 0


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
        packed_batch = PackedBatch.from_numpy(batch, torch.device("cpu"))
        inputs, flat, (rows, length) = packed_batch.inputs, packed_batch.flat, packed_batch.shape
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


def test_the_gelu_epilogue_is_tanh_gelu_exact_for_tanh_models_and_opt_in_for_erf_ones(model, examples) -> None:
    """A BERT trained with tanh GELU gets the fused epilogue as its own activation (transformers' logits); an erf
    GELU BERT gets it only with approximate_gelu, and then computes what the same weights under tanh GELU do."""
    batch = {name: torch.from_numpy(value) for name, value in _real_batch(model, examples).items()}
    real = batch["attention_mask"].bool()
    tanh_module = copy.deepcopy(model.module).eval()
    tanh_module.config.hidden_act = "gelu_pytorch_tanh"
    for layer in tanh_module.bert.encoder.layer:
        layer.intermediate.intermediate_act_fn = torch.nn.GELU(approximate="tanh")
    tanh_packed = PackedBertQA(tanh_module)
    assert tanh_packed.gelu_epilogue and not PackedBertQA(model.module.eval()).gelu_epilogue
    approximate = PackedBertQA(model.module.eval(), approximate_gelu=True)
    assert approximate.gelu_epilogue
    with torch.no_grad():
        exact = model.module(**batch).start_logits[real]
        tanh_reference = tanh_module(**batch).start_logits[real]
        torch.testing.assert_close(tanh_packed(**batch).start_logits[real], tanh_reference, atol=2e-5, rtol=1e-5)
        found = approximate(**batch).start_logits[real]
    torch.testing.assert_close(found, tanh_reference, atol=2e-5, rtol=1e-5)
    assert 1e-6 < float((found - exact).abs().max()) < 0.05  # an approximation: close to exact, not equal


@pytest.mark.skipif(not hasattr(torch, "compile"), reason="no torch.compile")
def test_compiled_layers_give_the_eager_logits_and_a_failure_falls_back_to_eager(model, examples, capsys) -> None:
    """The runner compiles a packed module's layers (regional compilation), padded and packed forwards agree
    with eager, and a compiled layer that fails puts the runner back on eager layers for good."""
    batch = _real_batch(model, examples[:24])
    eager = TorchRunner(PackedBertQA(model.module.eval()), packed=True)
    expected = eager.logits_tensors(batch)
    fast = PackedBertQA(model.module.eval())
    try:
        runner = TorchRunner(fast, compile=True, packed=True)
        found = runner.logits_tensors(batch)  # padding: the packed forward
        full = {name: value[:1, : int(value.shape[1])] for name, value in batch.items()}
        full["attention_mask"] = np.ones_like(full["attention_mask"])
        padded_found, padded_expected = runner.logits_tensors(full), eager.logits_tensors(full)
    except Exception as error:  # noqa: BLE001 - a CPU without a working C++ toolchain cannot compile
        pytest.skip(f"torch.compile unusable here: {error}")
    if runner.compiled is None:
        pytest.skip("torch.compile fell back to eager on this machine")
    assert runner.regional and all("forward_packed" in layer.__dict__ for layer in fast.layers)
    real = torch.from_numpy(batch["attention_mask"]).bool()
    for got, want in zip(found + padded_found, expected + padded_expected, strict=True):
        mask = real if got.shape == real.shape else torch.ones_like(got, dtype=torch.bool)
        torch.testing.assert_close(got[mask], want[mask], atol=1e-4, rtol=1e-4)

    def broken(*args, **kwargs):
        raise RuntimeError("inductor exploded")

    fast.layers[0].forward_packed = broken
    again = runner.logits_tensors(batch)
    assert "torch.compile failed (RuntimeError: inductor exploded); running eager" in capsys.readouterr().err
    assert runner.compiled is None and not any("forward_packed" in layer.__dict__ for layer in fast.layers)
    torch.testing.assert_close(again[0][real], expected[0][real], atol=1e-5, rtol=1e-5)


def test_prepared_batches_run_as_the_runner_would_run_them(model, examples) -> None:
    """`TorchRunner.prepare` (the speed figures' model-only batches) packs exactly the batches logits_tensors
    packs, with the same logits."""
    batch = _real_batch(model, examples[:24])
    runner = TorchRunner(PackedBertQA(model.module.eval()), packed=True)
    prepared = runner.prepare(batch)
    assert isinstance(prepared, PackedBatch) and prepared.shape == batch["input_ids"].shape
    assert len(prepared.flat) == int(batch["attention_mask"].sum())
    for got, want in zip(runner.logits_tensors(prepared), runner.logits_tensors(batch), strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    full = {name: value[:2] for name, value in batch.items()}
    full["attention_mask"] = np.ones_like(full["attention_mask"])
    assert isinstance(runner.prepare(full), dict)  # no padding: the padded forward, as logits_tensors runs it
    plain = TorchRunner(model.module.eval())
    assert isinstance(plain.prepare(batch), dict)


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


def test_varlen_attention_is_only_chosen_for_fp16_or_bf16_compute() -> None:
    """Varlen flash attention refuses fp32 (the H200 run of `--precision fp32` failed on it): the packed forward
    takes it only when the module computes in half precision, by its weights or by autocast."""
    assert computes_in_half(torch.bfloat16) and computes_in_half(torch.float16)
    assert not computes_in_half(torch.float32, "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert computes_in_half(torch.float32, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fp32_on_cuda_runs_unpacked_and_the_packed_forward_attends_window_by_window(model, examples) -> None:
    batch = _real_batch(model, examples)
    module = model.module.__class__(model.module.config)
    module.load_state_dict(model.module.state_dict())
    module = module.to("cuda").eval()
    tensors = {name: torch.from_numpy(value).cuda() for name, value in batch.items()}
    real = tensors["attention_mask"].bool()
    with torch.inference_mode():
        reference = module(**tensors)
        start, _ = TorchRunner(PackedBertQA(module), autocast=False, packed=True).logits_tensors(batch)
    torch.testing.assert_close(start[real].float(), reference.start_logits[real], atol=1e-4, rtol=1e-4)


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


def test_packed_training_gives_transformers_loss_and_gradients_and_trains_the_saved_weights(model, examples) -> None:
    """PackedSpanTrainer (bert_qa's packed_training): on a batch without padding its loss and gradients are
    transformers'; with padding its logits are transformers' at the real positions and its loss leaves the padding
    out of the softmax; training it through the job's hooks changes the transformers module's Q/K/V."""
    from bert_qa.fused import PackedSpanTrainer
    from qa_common.testing.contract import LearningCheck, learning_examples, train_briefly

    module = copy.deepcopy(model.module).eval()
    trainer = PackedSpanTrainer(module).eval()  # eval: no dropout, so the two are comparable
    batch = {name: torch.from_numpy(value) for name, value in _real_batch(model, examples[:24]).items()}
    rows, length = batch["input_ids"].shape
    labels = {"start_positions": torch.arange(rows) % 20 + 1, "end_positions": torch.arange(rows) % 20 + 3}
    real = batch["attention_mask"].bool()
    found = trainer(**batch, **labels)
    reference = module(**batch, **labels)
    torch.testing.assert_close(found.start_logits[real], reference.start_logits[real], atol=2e-5, rtol=1e-5)
    assert bool((found.start_logits[~real] == -1e4).all())
    masked = reference.start_logits.masked_fill(~real, -1e4), reference.end_logits.masked_fill(~real, -1e4)
    expected = (torch.nn.functional.cross_entropy(masked[0], labels["start_positions"])
                + torch.nn.functional.cross_entropy(masked[1], labels["end_positions"])) / 2
    torch.testing.assert_close(found.loss, expected, atol=1e-5, rtol=1e-5)

    full = {name: value[:, :40] for name, value in batch.items()}
    full["attention_mask"] = torch.ones_like(full["attention_mask"])
    packed_loss, transformers_loss = trainer(**full, **labels).loss, module(**full, **labels).loss
    torch.testing.assert_close(packed_loss, transformers_loss, atol=1e-5, rtol=1e-5)
    packed_loss.backward()
    transformers_loss.backward()
    for layer, source in zip(trainer.packed.layers, module.bert.encoder.layer, strict=True):
        attention = source.attention.self  # the fused copy's gradient, against the three projections' own
        expected_grad = torch.cat([attention.query.weight.grad, attention.key.weight.grad, attention.value.weight.grad])
        assert expected_grad.abs().max() > 0
        torch.testing.assert_close(layer.qkv.weight.grad, expected_grad, atol=1e-5, rtol=1e-4)
    adapter = get_adapter("bert_qa")
    student = adapter.build(adapter.config("tiny", {**SMALL, "packed_training": True}))
    query = student.module.bert.encoder.layer[0].attention.self.query.weight.detach().clone()
    assert isinstance(student.training_module(), PackedSpanTrainer)
    losses = train_briefly(student, learning_examples(16), LearningCheck(steps=30, learning_rate=3e-3))
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5, losses
    student.finish_training()
    trained = student.module.bert.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(trained, query)  # written back: what is saved is what was trained


def test_packed_training_refuses_what_it_cannot_train() -> None:
    adapter = get_adapter("bert_qa")
    with pytest.raises(ValueError, match="packed_training trains a dense student on its own: not with pruning"):
        adapter.build(adapter.config("tiny", {**SMALL, "packed_training": True, "pruning": "smp", "density": 0.5}))
    student = adapter.build(adapter.config("tiny", {**SMALL, "packed_training": True}))
    with pytest.raises(ValueError, match="packed_training has no gradient checkpointing"):
        student.training_module().gradient_checkpointing_enable()
