"""Tests of qa_common.config: presets and overrides layered into typed dataclasses, strings coerced, errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from qa_common.config import ConfigError, build_config, config_to_dict, split_overrides


@dataclass
class ToyConfig:
    name: str = "toy"
    tokenizer_name: str | None = None
    layers: int = 2
    learning_rate: float = 1e-3
    pretrained: bool = True
    precision: Literal["fp32", "bf16"] = "fp32"
    max_examples: int | None = None
    widths: tuple[int, ...] = (8, 16)
    tags: list[str] | None = None


PRESETS = {"small": {"layers": 1, "widths": (4,)}, "big": {"layers": 12, "learning_rate": 5e-5, "name": "big"}}


def test_defaults_then_preset_then_overrides() -> None:
    assert build_config(ToyConfig) == ToyConfig()
    assert build_config(ToyConfig, PRESETS["big"]) == ToyConfig(name="big", layers=12, learning_rate=5e-5)
    config = build_config(ToyConfig, PRESETS["big"], {"layers": "3", "pretrained": "false"})
    assert config == ToyConfig(name="big", layers=3, learning_rate=5e-5, pretrained=False)


def test_unknown_keys_are_all_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigError) as raised:
        build_config(ToyConfig, PRESETS["small"], {"layer": 3, "dropout": 0.1, "layers": 4})
    message = str(raised.value)
    assert message.startswith("unknown ToyConfig key(s): dropout, layer; known: ")
    assert "layers, learning_rate, max_examples, name, precision, pretrained, tags, tokenizer_name, widths" in message
    assert isinstance(raised.value, ValueError)


def test_an_unknown_key_in_a_preset_is_an_error_too() -> None:
    with pytest.raises(ConfigError, match="unknown ToyConfig key"):
        build_config(ToyConfig, {"layerz": 1})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3), ("3.0", 3), (" 7 ", 7), ("1e3", 1000), (4.0, 4), (5, 5), ("-2", -2)],
)
def test_integers_from_strings_and_whole_floats(value, expected) -> None:
    layers = build_config(ToyConfig, {"layers": value}).layers
    assert layers == expected
    assert type(layers) is int


@pytest.mark.parametrize("value", ["3.5", "three", 2.5, True, "", None, [3]])
def test_values_that_are_not_integers_are_refused(value) -> None:
    with pytest.raises(ConfigError, match=r"^layers: expected an integer, got "):
        build_config(ToyConfig, {"layers": value})


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("1", True), ("yes", True), ("on", True), (True, True),
     ("false", False), ("FALSE", False), ("0", False), ("no", False), ("off", False), (False, False)],
)
def test_booleans(value, expected: bool) -> None:
    assert build_config(ToyConfig, {"pretrained": value}).pretrained is expected


@pytest.mark.parametrize("value", ["maybe", "", 1, 0, None])
def test_values_that_are_not_booleans_are_refused(value) -> None:
    with pytest.raises(ConfigError, match=r"^pretrained: expected true or false, got "):
        build_config(ToyConfig, {"pretrained": value})


@pytest.mark.parametrize(("value", "expected"), [("5e-5", 5e-5), ("0.1", 0.1), (3, 3.0), ("2", 2.0)])
def test_floats(value, expected: float) -> None:
    learning_rate = build_config(ToyConfig, {"learning_rate": value}).learning_rate
    assert learning_rate == expected
    assert type(learning_rate) is float


@pytest.mark.parametrize("value", ["fast", True, None])
def test_values_that_are_not_numbers_are_refused(value) -> None:
    with pytest.raises(ConfigError, match=r"^learning_rate: expected a number, got "):
        build_config(ToyConfig, {"learning_rate": value})


@pytest.mark.parametrize("value", ["none", "None", "NULL", "", None])
def test_optional_fields_accept_none_spellings(value) -> None:
    config = build_config(ToyConfig, {"max_examples": value, "tokenizer_name": value, "tags": value})
    assert (config.max_examples, config.tokenizer_name, config.tags) == (None, None, None)


def test_optional_fields_coerce_their_type() -> None:
    config = build_config(ToyConfig, {"max_examples": "100.0", "tokenizer_name": "bert-base-uncased"})
    assert config.max_examples == 100 and type(config.max_examples) is int
    assert config.tokenizer_name == "bert-base-uncased"
    with pytest.raises(ConfigError, match=r"^max_examples: expected an integer, got 'many'$"):
        build_config(ToyConfig, {"max_examples": "many"})


def test_literal_fields_accept_only_their_values() -> None:
    assert build_config(ToyConfig, {"precision": "bf16"}).precision == "bf16"
    with pytest.raises(ConfigError, match=r"^precision: 'fp64' is not one of 'fp32', 'bf16'$"):
        build_config(ToyConfig, {"precision": "fp64"})


def test_strings_are_not_made_from_other_types() -> None:
    with pytest.raises(ConfigError, match=r"^name: expected a string, got 3$"):
        build_config(ToyConfig, {"name": 3})


def test_sequences_from_comma_separated_strings_and_lists() -> None:
    assert build_config(ToyConfig, {"widths": "1, 2,3"}).widths == (1, 2, 3)
    assert build_config(ToyConfig, {"widths": ["4", 5.0]}).widths == (4, 5)
    assert build_config(ToyConfig, {"widths": ""}).widths == ()
    assert build_config(ToyConfig, {"tags": "a,b"}).tags == ["a", "b"]
    with pytest.raises(ConfigError, match=r"^widths: expected an integer, got 'x'$"):
        build_config(ToyConfig, {"widths": "1,x"})


def test_config_to_dict_round_trips_through_build_config() -> None:
    config = ToyConfig(name="n", tokenizer_name=None, layers=4, learning_rate=2e-5, pretrained=False,
                       precision="bf16", max_examples=None, widths=(3, 5), tags=["x", "y"])
    flat = config_to_dict(config)
    assert flat == {"name": "n", "tokenizer_name": None, "layers": 4, "learning_rate": 2e-5, "pretrained": False,
                    "precision": "bf16", "max_examples": None, "widths": "3,5", "tags": "x,y"}
    assert build_config(ToyConfig, flat) == config
    # What MLflow parameters and the command line give back: every value a string.
    assert build_config(ToyConfig, {key: str(value) for key, value in flat.items()}) == config


def test_split_overrides_separates_the_keys_of_a_config() -> None:
    mine, rest = split_overrides(ToyConfig, {"layers": "2", "epochs": "3", "precision": "bf16", "seed": 1})
    assert mine == {"layers": "2", "precision": "bf16"}
    assert rest == {"epochs": "3", "seed": 1}
