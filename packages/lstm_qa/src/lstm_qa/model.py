"""Building, preparing, saving and loading lstm_qa readers as shared-pipeline extractive models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lstm_qa.config import LstmQAConfig
from lstm_qa.embeddings import embedding_matrix, load_vectors, token_coverage
from lstm_qa.modules import BiDAF, Reader, SeedReader
from lstm_qa.text import NULL_ID, SPECIAL_TOKENS, Vocabulary, make_word_windows, training_texts, word_lists
from qa_common.data.examples import SquadExample
from qa_common.data.windows import ExtractiveFeatures
from qa_common.extractive import ExtractiveQAModel, OnnxRunner, TorchRunner

WEIGHTS_FILE = "model.safetensors"


def build_module(config: LstmQAConfig, embeddings: torch.Tensor) -> Reader:
    """The reader ``config`` describes, with ``embeddings`` (vocabulary x dim) as its initial embedding."""
    common = {"freeze_embeddings": config.freeze_embeddings, "dropout": config.dropout, "l2": config.l2,
              "exact_match": config.exact_match}
    if config.reader == "bidaf":
        return BiDAF(embeddings, hidden_size=config.hidden_size, modeling_layers=config.modeling_layers,
                     no_answer_head=config.no_answer_head, **common)
    if config.reader == "seed":
        return SeedReader(embeddings, hidden_size=config.hidden_size, attention=config.attention,
                          heads=config.attention_heads, pooling=config.pooling, residual=config.residual,
                          lstm_layers=config.lstm_layers, max_question_length=config.max_question_length, **common)
    raise ValueError(f"unknown reader {config.reader!r}; expected 'seed' or 'bidaf'")


class LstmQAModel(ExtractiveQAModel):
    """A word-level reader: its vocabulary and embeddings come from the training data (``prepare``)."""

    adapter_name = "lstm_qa"
    input_names = ("input_ids", "attention_mask", "question_ids")
    sequence_axes = {"question_ids": "question"}
    onnx_dynamo = False  # torch.export's LSTM graph broke on other shapes in ONNX Runtime; the tracer's LSTM nodes work

    def __init__(self, module: Reader | None, vocabulary: Vocabulary | None, config: LstmQAConfig, runner=None):
        super().__init__(module, vocabulary, config, runner)

    @property
    def vocabulary(self) -> Vocabulary | None:
        return self.tokenizer

    def _ready(self) -> None:
        if self.vocabulary is None or (self.module is None and isinstance(self.runner, TorchRunner)):
            raise RuntimeError("this lstm_qa model has no vocabulary yet: call prepare(training examples) first")

    def prepare(self, examples: Sequence[SquadExample]) -> dict[str, float]:
        """Build the vocabulary from the training questions and contexts (plus the ``pretrained_words`` most
        frequent words of the vectors), load or train the embeddings, and build the reader on them. Returns the
        vocabulary size and the embeddings' coverage of the training tokens (share of word occurrences found)
        and of the vocabulary (share of words found)."""
        if not examples:
            raise ValueError("lstm_qa needs training examples to build its vocabulary")
        c = self.config
        sentences = word_lists(training_texts(examples))
        words = [word for sentence in sentences for word in sentence]
        vocabulary = Vocabulary.from_words(words, max_size=c.vocabulary_size, min_count=c.min_count)
        vectors = load_vectors(c.embeddings, sentences=sentences, dim=c.embedding_dim, seed=c.seed,
                               fasttext_epochs=c.fasttext_epochs)
        if c.pretrained_words and vectors is not None:
            vocabulary = vocabulary.extended(vectors.index_to_key[: c.pretrained_words])
        matrix, type_coverage = embedding_matrix(vocabulary.words, vectors, c.embedding_dim, c.seed,
                                                 special=len(SPECIAL_TOKENS))
        coverage = token_coverage(words, vectors)
        torch.manual_seed(c.seed)
        self.module = build_module(c, torch.from_numpy(np.ascontiguousarray(matrix)))
        self.tokenizer = vocabulary
        self.runner = TorchRunner(self.module)
        return {"vocabulary_size": float(len(vocabulary)), "embedding_token_coverage": coverage,
                "embedding_vocabulary_coverage": type_coverage}

    def windows(self, examples: Sequence[SquadExample], *, with_labels: bool) -> ExtractiveFeatures:
        self._ready()
        s = self.settings
        return make_word_windows(self.vocabulary, examples, max_length=s.max_length, doc_stride=s.doc_stride,
                                 max_question_length=s.max_question_length, with_labels=with_labels)

    def save(self, directory: Path) -> None:
        self._ready()
        directory = Path(directory)
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.module.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
        self.vocabulary.save(directory)

    def model_only_inputs(self, batch_size: int, sequence_length: int) -> dict[str, np.ndarray]:
        generator = np.random.default_rng(0)
        vocabulary = len(self.vocabulary) if self.vocabulary else 1000
        low = NULL_ID + 1 if vocabulary > NULL_ID + 1 else 1
        question_length = min(sequence_length, self.config.max_question_length, 20)
        input_ids = generator.integers(low, vocabulary, (batch_size, sequence_length), dtype=np.int64)
        input_ids[:, 0] = NULL_ID
        return {
            "input_ids": input_ids,
            "attention_mask": np.ones((batch_size, sequence_length), dtype=np.int64),
            "question_ids": generator.integers(low, vocabulary, (batch_size, question_length), dtype=np.int64),
        }


def build_model(config: LstmQAConfig) -> LstmQAModel:
    """A model waiting for ``prepare``: the vocabulary and embeddings depend on the training data. A bad reader,
    attention or pooling fails here, on a throwaway module, before any data is read or run started."""
    build_module(config, torch.zeros(len(SPECIAL_TOKENS) + 1, 4))
    return LstmQAModel(None, None, config)


def load_model(directory: Path, config: LstmQAConfig, runtime: str = "torch") -> LstmQAModel:
    """Load a saved reader from ``directory`` (safetensors weights + vocabulary), on PyTorch or ONNX Runtime."""
    directory = Path(directory)
    if runtime not in ("torch", "onnx"):
        raise ValueError(f"unknown runtime {runtime!r}; lstm_qa runs on 'torch' or 'onnx'")
    needed = ["vocabulary.json", "model.onnx" if runtime == "onnx" else WEIGHTS_FILE]
    missing = [name for name in needed if not (directory / name).exists()]
    if missing:
        what = "has no ONNX export (model.onnx)" if missing == ["model.onnx"] else f"lacks {', '.join(missing)}"
        raise FileNotFoundError(f"{directory} {what}")
    vocabulary = Vocabulary.load(directory)
    if runtime == "onnx":
        return LstmQAModel(None, vocabulary, config, runner=OnnxRunner(directory / "model.onnx"))
    state = load_file(str(directory / WEIGHTS_FILE))
    module = build_module(config, torch.zeros_like(state["embedding.weight"]))
    module.load_state_dict(state)
    return LstmQAModel(module.eval(), vocabulary, config)


__all__ = ["LstmQAModel", "build_model", "load_model"]
