"""The bert_qa adapter: registered under the ``squad_qa.adapters`` entry point as ``bert_qa``."""

from __future__ import annotations

from pathlib import Path

from bert_qa.config import PRESETS, BertQAConfig
from bert_qa.model import BertQAModel, build_model, load_model
from qa_common.adapter import Adapter, ModelInfo
from qa_common.config import build_config


class BertAdapter(Adapter):
    name = "bert_qa"
    config_class = BertQAConfig
    presets = PRESETS
    default_preset = "bert-base"

    def build(self, config: BertQAConfig) -> BertQAModel:
        return build_model(config)

    def load(self, directory: Path, *, runtime: str = "torch") -> BertQAModel:
        info = ModelInfo.read(directory)
        return load_model(Path(directory), build_config(BertQAConfig, info.config), runtime=runtime)

    def supported_runtimes(self) -> tuple[str, ...]:
        return ("torch", "onnx")
