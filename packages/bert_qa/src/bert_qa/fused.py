"""A lean inference forward for transformers' BertForQuestionAnswering: fused QKV and unpadded (packed) tokens.

transformers' BERT runs three Q/K/V projections and pays for every padding token of a batch. `PackedBertQA`
reads the same weights (the embeddings, output projections, feed-forward, layer norms and span head are the
transformers module's own submodules; only Q, K and V are concatenated into one projection) and offers two
forwards with the same numbers as transformers' (up to the order of floating-point sums):

- ``forward(input_ids, attention_mask=None, token_type_ids=None)``: a padded (B, L) batch, transformers'
  interface (``.start_logits``/``.end_logits``), for CUDA graphs, torch.compile and batches without padding
  (SDPA without a mask: its flash kernel);
- ``forward_packed(input_ids, token_type_ids, position_ids, cu_seqlens, max_length)``: the T real tokens of a
  batch laid end to end; every projection runs on T rows instead of B x L, and attention is
  ``torch.nn.attention.varlen.varlen_attn`` (flash attention over variable lengths) on CUDA. Elsewhere (a CPU,
  a torch without varlen attention) each window attends through SDPA on its own: same numbers, not fast.

``compile_layers`` compiles each encoder layer (torch.compile: one graph serves all of them, so warm-up takes
seconds, not the minutes a whole-model compile took on the H200), fusing the residual adds, layer norms, biases
and GELU around the GEMMs. ``approximate_gelu`` runs the feed-forward's first projection and its GELU as one
cuBLASLt GEMM with a GELU epilogue on CUDA: that epilogue is the tanh approximation, so for BERT's exact (erf)
GELU it is an approximation (off by default), and for a model trained with tanh GELU it is its own activation
(on whenever the config says ``gelu_new`` or ``gelu_pytorch_tanh``).

`PackedSpanTrainer` is what the shared job trains under bert_qa's ``packed_training``: the packed forward fed each
padded batch's real tokens, with transformers' span loss over each window's real positions.

`supports` says which modules it can read: post-LayerNorm BERT with absolute positions and no cross-attention
(BERT, MiniLM and other ``BertForQuestionAnswering`` checkpoints). The fused Q/K/V weight is a copy: training
`PackedBertQA` (it applies the config's dropout in training mode; ``scripts/bench_train.py`` variant ``packed``)
trains that copy, and `PackedBertQA.write_back` puts it into the transformers module's Q/K/V.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from bert_qa.pruning import has_masks
from qa_common.extractive import PackedBatch


def supports(module: nn.Module) -> str | None:
    """None when `PackedBertQA` can read ``module``, else why not."""
    config = getattr(module, "config", None)
    if type(module).__name__ != "BertForQuestionAnswering" or config is None:
        return f"{type(module).__name__} is not transformers' BertForQuestionAnswering"
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return "a decoder or cross-attention BERT"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"position_embedding_type {config.position_embedding_type!r}"
    if getattr(config, "chunk_size_feed_forward", 0):
        return "chunked feed-forward"
    if has_masks(module):
        return "the encoder still has pruning masks (bert_qa.pruning.apply_masks makes them plain weights)"
    return None


TANH_GELU = ("gelu_new", "gelu_pytorch_tanh")


@torch.library.custom_op("bert_qa::linear_gelu_tanh", mutates_args=())
def linear_gelu_tanh(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """gelu_tanh(hidden @ weight.T + bias): on CUDA one cuBLASLt GEMM with its GELU epilogue. An opaque op, so
    torch.compile keeps the epilogue instead of splitting off the GELU again."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    if flat.is_cuda:
        out = torch._addmm_activation(bias, flat, weight.t(), use_gelu=True)
    else:  # the CPU kernel's epilogue is erf GELU: the same tanh GELU as on CUDA instead
        out = F.gelu(F.linear(flat, weight, bias), approximate="tanh")
    return out.reshape(*hidden.shape[:-1], weight.shape[0])


@linear_gelu_tanh.register_fake
def _(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return hidden.new_empty((*hidden.shape[:-1], weight.shape[0]))


def varlen_attention():
    """torch's variable-length flash attention, or None where this torch has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


HALF = (torch.float16, torch.bfloat16)


def computes_in_half(weight_dtype: torch.dtype, device_type: str = "cuda") -> bool:
    """Whether a module with ``weight_dtype`` weights computes in fp16/bf16 on ``device_type`` (its own dtype, or
    autocast's): varlen flash attention takes nothing else."""
    if weight_dtype in HALF:
        return True
    return torch.is_autocast_enabled(device_type) and torch.get_autocast_dtype(device_type) in HALF


class PackedLayer(nn.Module):
    def __init__(self, layer: nn.Module, heads: int, hidden_dropout: float = 0.0, attention_dropout: float = 0.0,
                 gelu_epilogue: bool = False):
        super().__init__()
        self.gelu_epilogue = gelu_epilogue
        attention = layer.attention.self
        self.heads = heads
        self.hidden_dropout, self.attention_dropout = hidden_dropout, attention_dropout
        self.qkv = nn.Linear(attention.query.in_features, 3 * attention.query.out_features,
                             device=attention.query.weight.device, dtype=attention.query.weight.dtype)
        with torch.no_grad():
            self.qkv.weight.copy_(torch.cat([attention.query.weight, attention.key.weight, attention.value.weight]))
            self.qkv.bias.copy_(torch.cat([attention.query.bias, attention.key.bias, attention.value.bias]))
        self.output = layer.attention.output.dense
        self.attention_norm = layer.attention.output.LayerNorm
        self.intermediate = layer.intermediate.dense
        self.activation = layer.intermediate.intermediate_act_fn
        self.feed_forward_output = layer.output.dense
        self.output_norm = layer.output.LayerNorm

    def _feed_forward(self, hidden: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        p = self.hidden_dropout if self.training else 0.0
        hidden = self.attention_norm(F.dropout(self.output(attended), p, self.training) + hidden)
        if self.gelu_epilogue and not self.training:
            inner = linear_gelu_tanh(hidden, self.intermediate.weight, self.intermediate.bias)
        else:
            inner = self.activation(self.intermediate(hidden))
        feed_forward = self.feed_forward_output(inner)
        return self.output_norm(F.dropout(feed_forward, p, self.training) + hidden)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(B, L, D) -> (B, L, D); ``mask`` None (no padding) or (B, 1, 1, L) booleans, True for real keys."""
        batch, length, width = hidden.shape
        qkv = self.qkv(hidden).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask,
                                                  dropout_p=self.attention_dropout if self.training else 0.0)
        return self._feed_forward(hidden, attended.transpose(1, 2).reshape(batch, length, width))

    def forward_packed(self, hidden: torch.Tensor, cu_seqlens: torch.Tensor, max_length: int,
                       bounds: list[int] | None) -> torch.Tensor:
        """(T, D) -> (T, D): windows laid end to end, ``cu_seqlens`` their (B + 1) boundaries."""
        tokens, width = hidden.shape
        qkv = self.qkv(hidden).view(tokens, 3, self.heads, width // self.heads)
        q, k, v = qkv.unbind(1)
        if bounds is None:
            attended = varlen_attention()(q, k, v, cu_seqlens, cu_seqlens, max_length, max_length)
        else:  # each window on its own (CPU): (1, H, n, d) through SDPA
            attended = torch.cat([
                F.scaled_dot_product_attention(q[a:b].transpose(0, 1)[None], k[a:b].transpose(0, 1)[None],
                                               v[a:b].transpose(0, 1)[None])[0].transpose(0, 1)
                for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
        return self._feed_forward(hidden, attended.reshape(tokens, width))


class PackedBertQA(nn.Module):
    """Start/end logits of a transformers BertForQuestionAnswering, padded or packed (module docstring)."""

    def __init__(self, module: nn.Module, approximate_gelu: bool = False):
        super().__init__()
        reason = supports(module)
        if reason:
            raise ValueError(f"PackedBertQA cannot read this module: {reason}")
        self.config = module.config
        embeddings = module.bert.embeddings
        self.words = embeddings.word_embeddings
        self.positions = embeddings.position_embeddings
        self.token_types = embeddings.token_type_embeddings
        self.embedding_norm = embeddings.LayerNorm
        config = module.config
        self.embedding_dropout = config.hidden_dropout_prob
        activation = getattr(config, "hidden_act", None)
        self.gelu_epilogue = activation in TANH_GELU or (approximate_gelu and activation == "gelu")
        self.layers = nn.ModuleList(PackedLayer(layer, config.num_attention_heads, config.hidden_dropout_prob,
                                                config.attention_probs_dropout_prob, self.gelu_epilogue)
                                    for layer in module.bert.encoder.layer)
        self.qa_outputs = module.qa_outputs
        self._module = [module]  # not a submodule: its Q/K/V stay out of this module's parameters
        self.eval()

    def compile_layers(self, mode: str | None = None, dynamic: bool | None = None) -> None:
        """torch.compile each encoder layer's forwards: the padded one with ``dynamic`` (None: static, then
        dynamic after a recompile), the packed one with dynamic token counts. The layers share their code, so
        one graph serves all of them (their weights are its inputs). `uncompile_layers` undoes it."""
        import torch._dynamo

        for name in ("recompile_limit", "cache_size_limit"):  # a graph per padded shape under static shapes
            if hasattr(torch._dynamo.config, name):
                setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 128))
        for layer in self.layers:
            layer.forward = torch.compile(type(layer).forward.__get__(layer), mode=mode, dynamic=dynamic)
            layer.forward_packed = torch.compile(type(layer).forward_packed.__get__(layer), mode=mode, dynamic=True)

    def uncompile_layers(self) -> None:
        """Back to eager layers (after a compile failure)."""
        for layer in self.layers:
            layer.__dict__.pop("forward", None)
            layer.__dict__.pop("forward_packed", None)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the fused Q/K/V weights (after training this module) into the transformers module's Q/K/V."""
        for layer, source in zip(self.layers, self._module[0].bert.encoder.layer, strict=True):
            attention = source.attention.self
            for part, linear in zip(layer.qkv.weight.chunk(3), (attention.query, attention.key, attention.value),
                                    strict=True):
                linear.weight.copy_(part)
            for part, linear in zip(layer.qkv.bias.chunk(3), (attention.query, attention.key, attention.value),
                                    strict=True):
                linear.bias.copy_(part)

    @property
    def can_pack(self) -> bool:
        """Whether `forward_packed` is fast here: varlen flash attention on CUDA (a CPU is only for checking)."""
        return next(self.parameters()).device.type != "cuda" or varlen_attention() is not None

    def _embed(self, input_ids, token_type_ids, position_ids) -> torch.Tensor:
        hidden = self.words(input_ids) + self.positions(position_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        hidden = self.embedding_norm(hidden + self.token_types(token_type_ids))
        return F.dropout(hidden, self.embedding_dropout, self.training) if self.training else hidden

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> SimpleNamespace:
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)[None, :].expand_as(input_ids)
        hidden = self._embed(input_ids, token_type_ids, positions)
        mask = None if attention_mask is None else attention_mask.to(torch.bool)[:, None, None, :]
        for layer in self.layers:
            hidden = layer(hidden, mask)
        start, end = self.qa_outputs(hidden).unbind(-1)
        return SimpleNamespace(start_logits=start, end_logits=end)

    def forward_packed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None,
                       position_ids: torch.Tensor, cu_seqlens: torch.Tensor, max_length: int) -> torch.Tensor:
        """(T, 2) start/end logits of the T tokens of windows laid end to end; ``cu_seqlens`` (B + 1) int32
        holds where each window begins (and the total last), ``max_length`` the longest window."""
        # Varlen flash attention takes fp16/bf16 only: fp32 (precision fp32, no autocast) attends window by window.
        fast = (input_ids.device.type == "cuda" and varlen_attention() is not None
                and computes_in_half(self.words.weight.dtype))
        bounds = None if fast else [int(b) for b in cu_seqlens.tolist()]
        hidden = self._embed(input_ids, token_type_ids, position_ids)
        for layer in self.layers:
            hidden = layer.forward_packed(hidden, cu_seqlens, max_length, bounds)
        return self.qa_outputs(hidden)



class PackedSpanTrainer(nn.Module):
    """What HF Trainer trains under ``packed_training``: `PackedBertQA` over the module, fed each padded batch's
    real tokens end to end, so neither the projections nor attention pay for padding.

    Its outputs are transformers' (B, L) start/end logits, with the padding positions at -10,000, and transformers'
    span loss: the mean of the start and end cross-entropies, positions clamped to L and L ignored. Unlike
    transformers', that softmax leaves the padding positions out (transformers' module computes logits for them
    too), so the loss equals transformers' exactly on batches without padding. Dropout: the config's on the
    embeddings and hidden states. Attention-probability dropout is not applied (varlen attention has none).
    Training updates the fused Q/K/V copy: call `finish` to put it into the transformers module's Q/K/V.
    """

    def __init__(self, module: nn.Module):
        super().__init__()
        self.packed = PackedBertQA(module).train()

    def gradient_checkpointing_enable(self, **kwargs) -> None:
        raise ValueError("packed_training has no gradient checkpointing: set gradient_checkpointing false, or "
                         "packed_training false")

    def compile_layers(self, mode: str | None = None) -> None:
        """torch.compile the packed module's layers (`PackedBertQA.compile_layers`): the shared job calls this under
        ``torch_compile`` in place of compiling this whole module, whose packing has data-dependent shapes."""
        self.packed.compile_layers(mode)

    def finish(self) -> None:
        """The trained fused Q/K/V into the transformers module's Q/K/V, which join the rest on its device (the
        Trainer moved only this module's parameters)."""
        self.packed._module[0].to(next(self.packed.parameters()).device)
        self.packed.write_back()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, start_positions=None, end_positions=None):
        from transformers.modeling_outputs import QuestionAnsweringModelOutput

        batch = PackedBatch.from_tensors(input_ids, attention_mask, token_type_ids)
        start, end = batch.unpack(self.packed.forward_packed(**batch.inputs))
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = input_ids.shape[1]
            cross_entropy = nn.CrossEntropyLoss(ignore_index=ignored)
            loss = (cross_entropy(start.float(), start_positions.clamp(0, ignored))
                    + cross_entropy(end.float(), end_positions.clamp(0, ignored))) / 2
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start, end_logits=end)
