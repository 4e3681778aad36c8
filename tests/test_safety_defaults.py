"""Safety defaults: saved models are safetensors only, a pickled checkpoint is never loaded in its place, and
no architecture runs remote code unless its config asks."""

from __future__ import annotations

import dataclasses

import pytest

from qa_common.adapter import available_adapters, get_adapter
from qa_common.testing.contract import TRAIN_SAMPLE, sample_examples, save_model


@pytest.mark.parametrize("name", sorted(available_adapters()))
def test_no_preset_trusts_remote_code(name):
    adapter = get_adapter(name)
    for preset in adapter.presets:
        config = adapter.config(preset)
        assert getattr(config, "trust_remote_code", False) is False, (name, preset)
    fields = {field.name: field.default for field in dataclasses.fields(adapter.config_class)}
    assert fields.get("trust_remote_code", False) is False


@pytest.mark.parametrize("name", ["bert_qa", "lstm_qa"])
def test_saved_models_hold_no_pickles_and_a_pickle_is_not_loaded_instead(name, tmp_path):
    adapter = get_adapter(name)
    model = adapter.build(adapter.config("tiny"))
    model.prepare(list(sample_examples(TRAIN_SAMPLE)))
    directory = save_model(model, adapter, adapter.config("tiny"), tmp_path / "model")
    files = {path.name for path in directory.iterdir()}
    assert "model.safetensors" in files
    assert not {name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))}
    # Replace the weights by a pickled checkpoint: loading must refuse rather than unpickle it.
    (directory / "model.safetensors").rename(directory / "pytorch_model.bin")
    with pytest.raises((FileNotFoundError, OSError, EnvironmentError), match="safetensors"):
        adapter.load(directory)
