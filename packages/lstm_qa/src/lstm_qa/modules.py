"""The PyTorch readers: the seed study's BiLSTM + attention models and BiDAF, all span pointers over words.

Every reader reads a window ``input_ids`` = [<null>] + context words and the question ``question_ids``, and
returns start/end logits over the window; position 0 (the <null> word, which the encoders read like any other
word) is the explicit no-answer option. Bidirectional LSTMs run each direction over the real words only (the
backward pass reads each row reversed within its own length), so outputs do not depend on how much padding a
batch adds, and the graph exports to ONNX without packed sequences.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import QuestionAnsweringModelOutput

MASKED = -1e4
FIRST_WORD_ID = 3  # ids 0-2 are padding, the unknown word and the no-answer position (lstm_qa.text)


def reverse_within_length(values: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row of (B, T, D) ``values`` reversed in its first ``lengths[b]`` steps; later steps stay put."""
    steps = torch.arange(values.shape[1], device=values.device).unsqueeze(0)
    last = (lengths - 1).unsqueeze(1)
    index = torch.where(steps <= last, last - steps, steps)
    return values.gather(1, index.unsqueeze(-1).expand_as(values))


class BiLSTM(nn.Module):
    """A bidirectional LSTM over right-padded sequences whose outputs at real steps ignore the padding."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        self.layers = nn.ModuleList()
        for layer in range(num_layers):
            size = input_size if layer == 0 else 2 * hidden_size
            self.layers.append(nn.ModuleList([nn.LSTM(size, hidden_size, batch_first=True),
                                              nn.LSTM(size, hidden_size, batch_first=True)]))
        self.dropout = nn.Dropout(dropout)

    def forward(self, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1)
        for index, (forward_lstm, backward_lstm) in enumerate(self.layers):
            if index:
                values = self.dropout(values)
            ahead = forward_lstm(values)[0]
            behind = reverse_within_length(backward_lstm(reverse_within_length(values, lengths))[0], lengths)
            values = torch.cat([ahead, behind], dim=-1)
        return values * mask.unsqueeze(-1).to(values.dtype)


def occurs_in(ids: torch.Tensor, mask: torch.Tensor, other_ids: torch.Tensor, other_mask: torch.Tensor,
              dtype: torch.dtype = torch.float32):
    """(B, T, 1) of ``dtype`` (the embeddings' own, so bf16 weights get bf16 features): 1.0 where the word of
    ``ids`` is a real, known word that also occurs in ``other_ids``."""
    same = (ids.unsqueeze(2) == other_ids.unsqueeze(1)) & other_mask.unsqueeze(1)
    known = mask & (ids > FIRST_WORD_ID - 1)
    return (same.any(dim=-1) & known).to(dtype).unsqueeze(-1)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.softmax(scores.masked_fill(~mask, MASKED), dim=dim)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention with ``heads`` heads. Written out rather than ``nn.MultiheadAttention``,
    whose traced ONNX graph fixes batch x heads as a constant and fails on any other batch or length."""

    def __init__(self, size: int, heads: int, dropout: float):
        super().__init__()
        if size % heads:
            raise ValueError(f"attention width {size} is not divisible by {heads} heads")
        self.heads = heads
        self.query, self.key, self.value, self.out = (nn.Linear(size, size) for _ in range(4))
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, size) ``query`` attending over (B, S, size) ``keys`` whose real positions ``key_mask`` marks."""
        def split(values):  # (B, T, size) -> (B, heads, T, size / heads)
            return values.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        query_heads, key_heads, value_heads = split(self.query(query)), split(self.key(keys)), split(self.value(keys))
        scores = query_heads @ key_heads.transpose(-1, -2) * query_heads.shape[-1] ** -0.5
        weights = self.dropout(masked_softmax(scores, key_mask[:, None, None, :], dim=-1))
        return self.out((weights @ value_heads).transpose(1, 2).flatten(2))


class QuestionPooling(nn.Module):
    """One vector for the question: "flatten" (a learned matrix per question position, summed: what Flatten +
    Dense computes over a fixed-length question) or "max" (global max pooling over the real words)."""

    def __init__(self, kind: str, size: int, max_question_length: int):
        super().__init__()
        self.kind = kind
        if kind == "flatten":
            self.weight = nn.Parameter(torch.randn(max_question_length, size, size) * (size * max_question_length)
                                       ** -0.5)
            self.bias = nn.Parameter(torch.zeros(size))
        elif kind != "max":
            raise ValueError(f"unknown pooling {kind!r}; expected 'flatten' or 'max'")

    def forward(self, question: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "max":
            return question.masked_fill(~mask.unsqueeze(-1), MASKED).max(dim=1).values
        weight = self.weight[: question.shape[1]]
        return torch.einsum("bqh,qhk->bk", question * mask.unsqueeze(-1).to(question.dtype), weight) + self.bias


def span_loss(start_logits, end_logits, start_positions, end_positions) -> torch.Tensor:
    loss = nn.functional.cross_entropy
    return (loss(start_logits.float(), start_positions) + loss(end_logits.float(), end_positions)) / 2


class Reader(nn.Module):
    """What every reader shares: the embedding (optionally frozen), dropout, the L2 penalty and the loss."""

    def __init__(self, embeddings: torch.Tensor, *, freeze_embeddings: bool, dropout: float, l2: float,
                 exact_match: bool = False):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(embeddings.float(), freeze=freeze_embeddings, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.l2 = l2
        self.exact_match = exact_match

    @property
    def input_size(self) -> int:
        """Width of what the encoder reads: the embedding, plus the exact-match feature when it is on."""
        return self.embedding.embedding_dim + int(self.exact_match)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embedding(ids))

    def encode(self, input_ids, context_mask, question_ids):
        """Context and question through the reader's shared ``encoder``; with the question's mask."""
        question_mask = question_ids != 0
        context, question = self.embed(input_ids), self.embed(question_ids)
        if self.exact_match:
            context = torch.cat([context, occurs_in(input_ids, context_mask, question_ids, question_mask,
                                                    context.dtype)], -1)
            question = torch.cat([question, occurs_in(question_ids, question_mask, input_ids, context_mask,
                                                      question.dtype)], -1)
        context = self.encoder(context, context_mask)
        return context, self.encoder(question, question_mask), question_mask

    def span_logits(self, input_ids, attention_mask, question_ids) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, input_ids, attention_mask, question_ids, start_positions=None, end_positions=None):
        context_mask = attention_mask.bool()
        start, end = self.span_logits(input_ids, context_mask, question_ids)
        start = start.masked_fill(~context_mask, MASKED)
        end = end.masked_fill(~context_mask, MASKED)
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start, end, start_positions, end_positions)
            if self.l2:
                loss = loss + self.l2 * sum((p.float() ** 2).sum() for name, p in self.named_parameters()
                                            if p.requires_grad and p.dim() > 1 and not name.startswith("embedding"))
        return QuestionAnsweringModelOutput(loss=loss, start_logits=start, end_logits=end)


class SeedReader(Reader):
    """The seed study's readers: a shared BiLSTM encoder, question-aware attention, a modeling BiLSTM
    (optionally residual), a pooled question vector, and start/end pointers.

    ``attention``: "dot" (each context word attends over the question words), "multihead" (multi-head
    attention of context over question), "self" (multi-head self-attention over the context, the question
    entering through its pooled vector).
    """

    def __init__(self, embeddings: torch.Tensor, *, hidden_size: int, attention: str, heads: int, pooling: str,
                 residual: bool, lstm_layers: int, max_question_length: int, freeze_embeddings: bool,
                 dropout: float, l2: float, exact_match: bool = False):
        super().__init__(embeddings, freeze_embeddings=freeze_embeddings, dropout=dropout, l2=l2,
                         exact_match=exact_match)
        size = 2 * hidden_size
        self.encoder = BiLSTM(self.input_size, hidden_size, lstm_layers, dropout)
        self.attention_kind = attention
        if attention in ("multihead", "self"):
            self.attention = MultiHeadAttention(size, heads, dropout)
        elif attention != "dot":
            raise ValueError(f"unknown attention {attention!r}; expected 'dot', 'multihead' or 'self'")
        self.pooling = QuestionPooling(pooling, size, max_question_length)
        self.modeling = BiLSTM(4 * size, hidden_size, 1, dropout)
        self.residual = nn.Linear(4 * size, size) if residual else None
        self.start = nn.Linear(2 * size, 1)
        self.end = nn.Linear(2 * size, 1)

    def span_logits(self, input_ids, context_mask, question_ids):
        context, question, question_mask = self.encode(input_ids, context_mask, question_ids)
        summary = self.pooling(question, question_mask)
        if self.attention_kind == "dot":
            weights = masked_softmax(context @ question.transpose(1, 2), question_mask.unsqueeze(1), dim=-1)
            attended = weights @ question
        elif self.attention_kind == "multihead":
            attended = self.attention(context, question, question_mask)
        else:
            attended = self.attention(context, context, context_mask)
        merged = torch.cat([context, attended, context * attended, context * summary.unsqueeze(1)], dim=-1)
        modeled = self.modeling(self.dropout(merged), context_mask)
        if self.residual is not None:
            modeled = modeled + self.residual(merged)
        features = self.dropout(torch.cat([modeled, context * summary.unsqueeze(1)], dim=-1))
        return self.start(features).squeeze(-1), self.end(features).squeeze(-1)


class BiDAF(Reader):
    """Bidirectional attention flow (Seo et al., 2017) with a no-answer word (as in Levy et al., 2017).

    Contextual BiLSTM encoder shared by context and question; trilinear similarity; context-to-question and
    question-to-context attention; a two-layer modeling BiLSTM; the end pointer reads a further BiLSTM over the
    modeling output.

    With ``no_answer_head`` the no-answer position's start and end logits come from a classifier over the
    whole window rather than from the <null> word's own state: max- and attention-pooled modeling and end
    states, the max-pooled question, and (with ``exact_match``) the share of question words found in the window.
    An unanswerable SQuAD 2.0 question usually differs from an answerable one in a single word; whether that
    word occurs in the window is a fact about the whole window, which the first word's LSTM state carries poorly.
    """

    def __init__(self, embeddings: torch.Tensor, *, hidden_size: int, modeling_layers: int,
                 freeze_embeddings: bool, dropout: float, l2: float, exact_match: bool = False,
                 no_answer_head: bool = False):
        super().__init__(embeddings, freeze_embeddings=freeze_embeddings, dropout=dropout, l2=l2,
                         exact_match=exact_match)
        size = 2 * hidden_size
        self.no_answer = None
        if no_answer_head:
            self.pool_scores = nn.Linear(2 * size, 1)
            self.no_answer = nn.Sequential(nn.Linear(5 * size + int(exact_match), size), nn.ReLU(),
                                           nn.Dropout(dropout), nn.Linear(size, 2))
        self.encoder = BiLSTM(self.input_size, hidden_size, 1, dropout)
        self.similarity_context = nn.Linear(size, 1, bias=False)
        self.similarity_question = nn.Linear(size, 1, bias=False)
        self.similarity_product = nn.Parameter(torch.full((size,), size**-0.5))
        self.modeling = BiLSTM(4 * size, hidden_size, modeling_layers, dropout)
        self.end_encoder = BiLSTM(size, hidden_size, 1, dropout)
        self.start = nn.Linear(5 * size, 1)
        self.end = nn.Linear(5 * size, 1)

    def span_logits(self, input_ids, context_mask, question_ids):
        context, question, question_mask = self.encode(input_ids, context_mask, question_ids)
        similarity = (self.similarity_context(context) + self.similarity_question(question).transpose(1, 2)
                      + (context * self.similarity_product) @ question.transpose(1, 2))  # (B, L, Q)
        to_question = masked_softmax(similarity, question_mask.unsqueeze(1), dim=-1) @ question
        strongest = similarity.masked_fill(~question_mask.unsqueeze(1), MASKED).max(dim=-1).values  # (B, L)
        to_context = (masked_softmax(strongest, context_mask, dim=-1).unsqueeze(1) @ context)  # (B, 1, 2H)
        merged = torch.cat([context, to_question, context * to_question, context * to_context], dim=-1)
        modeled = self.modeling(self.dropout(merged), context_mask)
        ending = self.end_encoder(self.dropout(modeled), context_mask)
        start = self.start(self.dropout(torch.cat([merged, modeled], dim=-1))).squeeze(-1)
        end = self.end(self.dropout(torch.cat([merged, ending], dim=-1))).squeeze(-1)
        if self.no_answer is not None:
            null = self.no_answer(self.window_summary(input_ids, context_mask, question_ids, question_mask,
                                                      torch.cat([modeled, ending], dim=-1), question))
            start = torch.cat([null[:, :1], start[:, 1:]], dim=1)
            end = torch.cat([null[:, 1:], end[:, 1:]], dim=1)
        return start, end

    def window_summary(self, input_ids, context_mask, question_ids, question_mask, states, question):
        """What the no-answer head reads: (B, 5 x 2H [+1]) pooled window and question states."""
        expanded = context_mask.unsqueeze(-1)
        strongest = states.masked_fill(~expanded, MASKED).max(dim=1).values
        weights = masked_softmax(self.pool_scores(states).squeeze(-1), context_mask, dim=-1)
        attended = (weights.unsqueeze(1) @ states).squeeze(1)
        asked = question.masked_fill(~question_mask.unsqueeze(-1), MASKED).max(dim=1).values
        parts = [strongest, attended, asked]
        if self.exact_match:
            found = occurs_in(question_ids, question_mask, input_ids, context_mask, states.dtype).squeeze(-1)
            known = (question_mask & (question_ids >= FIRST_WORD_ID)).to(found.dtype).sum(1).clamp(min=1)
            parts.append((found.sum(1) / known).unsqueeze(-1))
        return self.dropout(torch.cat(parts, dim=-1))
