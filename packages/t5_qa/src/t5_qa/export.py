"""ONNX export of a T5 reader through torch.onnx (the dynamo exporter): the encoder, the decoder and the
decoder-with-past as three graphs with dynamic batch and sequence axes, and their parity with PyTorch on real
windows (generated ids, teacher-forced logits, and the predictions themselves)."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from qa_common.data.examples import SquadExample
from qa_common.onnx_export import parity_difference
from t5_qa.runtimes import (
    DECODER_FILE,
    DECODER_WITH_PAST_FILE,
    ENCODER_FILE,
    TOKENS_FILE,
    OnnxSeq2Seq,
    layer_output_names,
)

OPSET = 18
PARITY_BATCH_SIZE = 16


class _Encoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)[0]


def _key_values(cache, with_cross_attention: bool) -> list[torch.Tensor]:
    """The tensors of an ``EncoderDecoderCache`` in ``layer_output_names`` order."""
    tensors = []
    for layer, own in enumerate(cache.self_attention_cache.layers):
        tensors += [own.keys, own.values]
        if with_cross_attention:
            cross = cache.cross_attention_cache.layers[layer]
            tensors += [cross.keys, cross.values]
    return tensors


class _Decoder(torch.nn.Module):
    """Decoder inputs of any length -> logits and every layer's self- and cross-attention keys and values."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask):
        output = self.model(encoder_outputs=(encoder_hidden_states,), attention_mask=encoder_attention_mask,
                            decoder_input_ids=decoder_input_ids, use_cache=True)
        return (output.logits, *_key_values(output.past_key_values, with_cross_attention=True))


class _DecoderWithPast(torch.nn.Module):
    """One new decoder token and the keys and values so far -> logits and the grown self-attention ones."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, decoder_input_ids, encoder_hidden_states, encoder_attention_mask, past):
        from transformers import DynamicCache, EncoderDecoderCache

        layers = len(past) // 4
        own = DynamicCache([(past[4 * layer], past[4 * layer + 1]) for layer in range(layers)])
        cross = DynamicCache([(past[4 * layer + 2], past[4 * layer + 3]) for layer in range(layers)])
        output = self.model(encoder_outputs=(encoder_hidden_states,), attention_mask=encoder_attention_mask,
                            decoder_input_ids=decoder_input_ids, past_key_values=EncoderDecoderCache(own, cross),
                            use_cache=True)
        return (output.logits, *_key_values(output.past_key_values, with_cross_attention=False))


def exportable_copy(model) -> torch.nn.Module:
    """A float CPU copy of ``model``'s seq2seq module to export: LoRA merged into the base, eager attention.

    Eager attention because torch.onnx (torch 2.13) fails on transformers' SDPA attention with symbolic
    shapes ("Cannot view a tensor ... as a tensor with shape ..." while decomposing the graph); the two compute
    the same function, and the parity figures measure the exported graph against the model as it runs.
    """
    module = copy.deepcopy(model.module)
    if model.is_peft:
        module = module.merge_and_unload()
    module = module.to("cpu").float().eval()
    for child in module.modules():
        # The encoder and decoder stacks hold copies of the config; each has to change.
        config = getattr(child, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            config._attn_implementation = "eager"
    return module


def export_graphs(module: torch.nn.Module, directory: Path, input_ids: torch.Tensor,
                  attention_mask: torch.Tensor) -> None:
    """Write ``encoder.onnx``, ``decoder.onnx`` and ``decoder_with_past.onnx`` (weights in ``*.onnx.data``) and
    the decoder's start and pad tokens to ``directory``, tracing ``module`` on one batch of windows (at least two
    rows and two tokens: torch.export fixes an axis it sees at size 1)."""
    directory.mkdir(parents=True, exist_ok=True)
    batch, encoder_sequence = torch.export.Dim("batch"), torch.export.Dim("encoder_sequence")
    decoder_sequence, past_sequence = torch.export.Dim("decoder_sequence"), torch.export.Dim("past_decoder_sequence")
    encoder_axes = {0: batch, 1: encoder_sequence}
    start = module.config.decoder_start_token_id
    common = {"opset_version": OPSET, "dynamo": True, "verbose": False}
    with torch.no_grad():
        encoder = _Encoder(module).eval()
        torch.onnx.export(encoder, (input_ids, attention_mask), str(directory / ENCODER_FILE),
                          input_names=["input_ids", "attention_mask"], output_names=["encoder_hidden_states"],
                          dynamic_shapes=(encoder_axes, encoder_axes), **common)
        hidden = encoder(input_ids, attention_mask)

        decoder = _Decoder(module).eval()
        decoder_input_ids = torch.full((len(input_ids), 3), start, dtype=torch.long)
        _, *presents = decoder(decoder_input_ids, hidden, attention_mask)
        layers = len(presents) // 4
        torch.onnx.export(decoder, (decoder_input_ids, hidden, attention_mask), str(directory / DECODER_FILE),
                          input_names=["decoder_input_ids", "encoder_hidden_states", "encoder_attention_mask"],
                          output_names=["logits", *layer_output_names(layers, "present")],
                          dynamic_shapes=({0: batch, 1: decoder_sequence}, encoder_axes, encoder_axes), **common)

        past_axes = tuple({0: batch, 2: past_sequence if ".decoder." in name else encoder_sequence}
                          for name in layer_output_names(layers, "past"))
        torch.onnx.export(_DecoderWithPast(module).eval(),
                          (decoder_input_ids[:, :1], hidden, attention_mask, tuple(presents)),
                          str(directory / DECODER_WITH_PAST_FILE),
                          input_names=["decoder_input_ids", "encoder_hidden_states", "encoder_attention_mask",
                                       *layer_output_names(layers, "past")],
                          output_names=["logits", *layer_output_names(layers, "present", ("decoder",))],
                          dynamic_shapes=({0: batch}, encoder_axes, encoder_axes, past_axes), **common)
    (directory / TOKENS_FILE).write_text(json.dumps({"decoder_start_token_id": start,
                                                     "pad_token_id": module.config.pad_token_id}))


def _generated(labels: torch.Tensor) -> list[list[int]]:
    return [[int(token) for token in row if token != -100] for row in labels]


def parity_figures(model, exported, examples: Sequence[SquadExample],
                   batch_size: int = PARITY_BATCH_SIZE) -> dict[str, float]:
    """How ``exported`` (on ONNX Runtime) agrees with ``model`` (on PyTorch) on the windows of ``examples``.

    ``onnx_max_abs_logit_diff``: max |torch - onnxruntime| decoder logit over every vocabulary entry at every
    scored position, for the answers PyTorch generated and for the no-answer text, teacher-forced on the same
    decoder inputs. ``onnx_generation_mismatches``: windows whose greedily generated ids differ.
    ``onnx_answer_mismatches``: questions whose predicted text differs; ``onnx_max_abs_no_answer_probability_diff``
    and ``onnx_max_abs_score_diff`` over the questions. ``onnx_parity_features`` and ``onnx_parity_questions``
    count what was compared.
    """
    features = model.windows(examples, with_targets=False)
    reference_runtime, onnx_runtime = model.runtime(), exported.runtime()
    max_logit_difference, generation_mismatches = 0.0, 0
    reference_windows, onnx_windows = [], []
    was_training = model.module.training
    model.module.eval()
    try:
        with torch.no_grad():
            for first in range(0, len(features), batch_size):
                reference = model.decode_batch(reference_runtime, features, first, first + batch_size)
                candidate = exported.decode_batch(onnx_runtime, features, first, first + batch_size)
                answer_logits = onnx_runtime.logits(candidate["encoded"], candidate["attention_mask"],
                                                    reference["labels"].cpu())
                for expected, actual, labels in ((reference["answer_logits"], answer_logits, reference["labels"]),
                                                 (reference["null_logits"], candidate["null_logits"],
                                                  reference["null_labels"])):
                    scored = (labels != -100).cpu().numpy()
                    max_logit_difference = max(max_logit_difference, parity_difference(
                        expected.float().cpu().numpy(), actual.float().numpy(), scored))
                generation_mismatches += sum(expected != actual for expected, actual in zip(
                    _generated(reference["labels"]), _generated(candidate["labels"]), strict=True))
                reference_windows += model.window_results(reference)
                onnx_windows += exported.window_results(candidate)
    finally:
        model.module.train(was_training)
    expected_predictions = model.predictions_from_windows(examples, features, reference_windows)
    actual_predictions = exported.predictions_from_windows(examples, features, onnx_windows)

    def largest(field: str) -> float:
        differences = [abs(getattr(actual_predictions[qid], field) - getattr(prediction, field))
                       for qid, prediction in expected_predictions.items()]
        return max((d if math.isfinite(d) else math.inf for d in differences), default=0.0)

    return {
        "onnx_max_abs_logit_diff": max_logit_difference,
        "onnx_generation_mismatches": float(generation_mismatches),
        "onnx_answer_mismatches": float(sum(actual_predictions[qid].text != prediction.text
                                            for qid, prediction in expected_predictions.items())),
        "onnx_max_abs_no_answer_probability_diff": largest("no_answer_probability"),
        "onnx_max_abs_score_diff": largest("score"),
        "onnx_parity_features": float(len(features)),
        "onnx_parity_questions": float(len(examples)),
    }


def export_t5_onnx(model, directory: Path, examples: Sequence[SquadExample]) -> dict[str, float]:
    """Export ``model`` (a ``T5QAModel`` on PyTorch) to ``directory`` and measure the parity of the exported
    graphs with it on ``examples`` (``parity_figures``), plus ``onnx_size_bytes`` of the three graphs."""
    from t5_qa.model import T5QAModel, _mask, _pad

    refusal = model.onnx_export_refusal()
    if refusal:
        raise ValueError(f"t5_qa does not export this model to ONNX: {refusal}")
    if not examples:
        raise ValueError("ONNX export needs at least one example to trace the graphs and measure parity on")
    directory = Path(directory)
    features = model.windows(examples, with_targets=False)
    rows = features.input_ids[:8]
    rows = rows if len(rows) > 1 else rows * 2  # every window holds at least the question and eos
    export_graphs(exportable_copy(model), directory, _pad(rows, model.pad_token_id), _mask(rows))

    exported = T5QAModel(None, model.tokenizer, model.config, onnx=OnnxSeq2Seq(directory))
    figures = parity_figures(model, exported, examples)
    figures["onnx_size_bytes"] = float(sum(path.stat().st_size for path in directory.glob("*.onnx*")))
    return figures
