"""The lstm_qa adapter: registered under the ``squad_qa.adapters`` entry point as ``lstm_qa``."""

from __future__ import annotations

from pathlib import Path

from lstm_qa.config import PRESETS, LstmQAConfig
from lstm_qa.model import LstmQAModel, build_model, load_model
from qa_common.adapter import Adapter, ModelInfo
from qa_common.config import build_config


class LstmAdapter(Adapter):
    name = "lstm_qa"
    config_class = LstmQAConfig
    presets = PRESETS
    default_preset = "bidaf"

    def build(self, config: LstmQAConfig) -> LstmQAModel:
        return build_model(config)

    def load(self, directory: Path, *, runtime: str = "torch") -> LstmQAModel:
        info = ModelInfo.read(directory)
        return load_model(Path(directory), build_config(LstmQAConfig, info.config), runtime=runtime)

    def supported_runtimes(self) -> tuple[str, ...]:
        return ("torch", "onnx")
