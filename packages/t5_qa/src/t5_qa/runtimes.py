"""The two ways t5_qa runs its encoder-decoder: the transformers model with HF ``generate`` (the reference), and the
graphs exported to ONNX (``t5_qa.export``) run by ONNX Runtime with a greedy loop that takes the same steps.

Both answer the same three calls on one batch of windows (token ids and mask as torch tensors, results as torch
tensors): ``encode``, ``generate`` (the decoder start token followed by the generated ids, padded after eos, as
``generate`` returns them) and ``logits`` (teacher-forced decoder logits for labels, as ``model(labels=...)``
computes them). So decoding, scoring and the choice between windows in ``T5QAModel`` are one implementation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.modeling_outputs import BaseModelOutput

ONNX_DIR = "onnx"
ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE = "encoder.onnx", "decoder.onnx", "decoder_with_past.onnx"
TOKENS_FILE = "decoder_tokens.json"


class TorchSeq2Seq:
    """A transformers seq2seq model (under peft: the base with its LoRA layers active)."""

    def __init__(self, model):
        self.model = model

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)[0]

    def generate(self, encoder_hidden_states: torch.Tensor, attention_mask: torch.Tensor, *,
                 logits_processor: LogitsProcessor, max_new_tokens: int, num_beams: int, eos_token_id: int,
                 pad_token_id: int) -> torch.Tensor:
        # A fresh BaseModelOutput per call: generate expands the one it is handed in place for beam search.
        return self.model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden_states), attention_mask=attention_mask,
            max_new_tokens=max_new_tokens, num_beams=num_beams, do_sample=False,
            logits_processor=LogitsProcessorList([logits_processor]), eos_token_id=eos_token_id,
            pad_token_id=pad_token_id, decoder_start_token_id=self.model.config.decoder_start_token_id)

    def logits(self, encoder_hidden_states: torch.Tensor, attention_mask: torch.Tensor,
               labels: torch.Tensor) -> torch.Tensor:
        return self.model(encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden_states),
                          attention_mask=attention_mask, labels=labels).logits


def inference_session(path: Path):
    """An ONNX Runtime session with every graph optimisation, on CUDA when this onnxruntime has it, else CPU."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Each decoding step runs torch ops between ONNX Runtime calls; ORT's threads spinning while they wait took
    # the cores from those ops and made parity runs several times slower.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    available = onnxruntime.get_available_providers()
    providers = [name for name in ("CUDAExecutionProvider", "CPUExecutionProvider") if name in available]
    return onnxruntime.InferenceSession(str(path), options, providers=providers)


class OnnxSeq2Seq:
    """The exported encoder, decoder and decoder-with-past run by ONNX Runtime.

    ``generate`` is greedy search as HF ``generate`` does it with one beam: the first step runs the decoder on the
    start token and keeps every layer's self- and cross-attention keys and values; each later step feeds the last
    token and those keys and values to the decoder-with-past. The scores of each step go through the same logits
    processor as on PyTorch, the argmax is taken by torch, rows that have produced eos get the pad token, and the
    loop stops when every row has ended or after ``max_new_tokens``.
    """

    def __init__(self, directory: Path):
        directory = Path(directory)
        missing = [name for name in (ENCODER_FILE, DECODER_FILE, DECODER_WITH_PAST_FILE, TOKENS_FILE)
                   if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{directory} holds no complete t5_qa ONNX export: {', '.join(missing)} missing")
        tokens = json.loads((directory / TOKENS_FILE).read_text())
        self.decoder_start_token_id = int(tokens["decoder_start_token_id"])
        self.pad_token_id = int(tokens["pad_token_id"])
        self.encoder = inference_session(directory / ENCODER_FILE)
        self.decoder = inference_session(directory / DECODER_FILE)
        self.decoder_with_past = inference_session(directory / DECODER_WITH_PAST_FILE)
        # The decoder returns every layer's self- and cross-attention keys and values as present.*; the
        # decoder-with-past takes them as past.* and returns the grown self-attention ones.
        self.past_names = [_past(output.name) for output in self.decoder.get_outputs()[1:]]
        self.grown_past_names = [_past(output.name) for output in self.decoder_with_past.get_outputs()[1:]]

    @staticmethod
    def _feed(session, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # The decoder-with-past reads only the shape of encoder_hidden_states; the exporter may have dropped it.
        return {node.name: values[node.name] for node in session.get_inputs()}

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        (hidden,) = self.encoder.run(["encoder_hidden_states"], {"input_ids": input_ids.cpu().numpy(),
                                                                  "attention_mask": attention_mask.cpu().numpy()})
        return torch.from_numpy(hidden)

    def _decoder_inputs(self, encoder_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> dict:
        return {"encoder_hidden_states": encoder_hidden_states.numpy(),
                "encoder_attention_mask": attention_mask.cpu().numpy()}

    def generate(self, encoder_hidden_states: torch.Tensor, attention_mask: torch.Tensor, *,
                 logits_processor: LogitsProcessor, max_new_tokens: int, num_beams: int, eos_token_id: int,
                 pad_token_id: int) -> torch.Tensor:
        if num_beams != 1:
            raise ValueError(f"the ONNX Runtime path decodes greedily (num_beams 1), not with num_beams {num_beams}")
        encoder = self._decoder_inputs(encoder_hidden_states, attention_mask)
        batch = encoder_hidden_states.shape[0]
        sequences = torch.full((batch, 1), self.decoder_start_token_id, dtype=torch.long)
        unfinished = torch.ones(batch, dtype=torch.bool)
        logits, *presents = self.decoder.run(None, self._feed(self.decoder, {
            **encoder, "decoder_input_ids": sequences.numpy()}))
        past = dict(zip(self.past_names, presents, strict=True))
        for step in range(max_new_tokens):
            scores = logits_processor(sequences, torch.from_numpy(logits[:, -1]).float())
            next_tokens = torch.where(unfinished, scores.argmax(dim=-1), pad_token_id)
            sequences = torch.cat([sequences, next_tokens[:, None]], dim=1)
            unfinished &= next_tokens != eos_token_id
            if not unfinished.any() or step + 1 == max_new_tokens:
                break
            logits, *presents = self.decoder_with_past.run(None, self._feed(self.decoder_with_past, {
                **encoder, **past, "decoder_input_ids": next_tokens[:, None].numpy()}))
            past.update(zip(self.grown_past_names, presents, strict=True))
        return sequences

    def logits(self, encoder_hidden_states: torch.Tensor, attention_mask: torch.Tensor,
               labels: torch.Tensor) -> torch.Tensor:
        (logits,) = self.decoder.run(["logits"], self._feed(self.decoder, {
            **self._decoder_inputs(encoder_hidden_states, attention_mask),
            "decoder_input_ids": shift_right(labels, self.decoder_start_token_id, self.pad_token_id).numpy()}))
        return torch.from_numpy(logits)


def _past(present_name: str) -> str:
    return present_name.replace("present.", "past.", 1)


def shift_right(labels: torch.Tensor, decoder_start_token_id: int, pad_token_id: int) -> torch.Tensor:
    """Decoder inputs for ``labels`` as transformers' seq2seq models make them: the start token, then the labels
    but the last, with -100 (ignored positions) replaced by the pad token."""
    shifted = torch.full_like(labels, pad_token_id)
    shifted[:, 0] = decoder_start_token_id
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted == -100, pad_token_id)


def layer_output_names(layers: int, prefix: str, parts: Sequence[str] = ("decoder", "encoder")) -> list[str]:
    """``{prefix}.{layer}.{decoder|encoder}.{key|value}`` for every layer: the self-attention (decoder) and
    cross-attention (encoder) keys and values, in the order the export wrappers return them."""
    return [f"{prefix}.{layer}.{part}.{kind}" for layer in range(layers) for part in parts for kind in ("key", "value")]
