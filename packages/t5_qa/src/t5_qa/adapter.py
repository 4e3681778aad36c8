"""The t5_qa adapter: registered under the ``squad_qa.adapters`` entry point as ``t5_qa``."""

from __future__ import annotations

from pathlib import Path

from qa_common.adapter import Adapter, ModelInfo
from qa_common.config import build_config
from t5_qa.config import PRESETS, T5QAConfig
from t5_qa.model import T5QAModel, build_model, load_model


class T5Adapter(Adapter):
    name = "t5_qa"
    config_class = T5QAConfig
    presets = PRESETS
    default_preset = "t5-base"

    def build(self, config: T5QAConfig) -> T5QAModel:
        return build_model(config)

    def load(self, directory: Path, *, runtime: str = "torch") -> T5QAModel:
        info = ModelInfo.read(directory)
        return load_model(Path(directory), build_config(T5QAConfig, info.config), runtime=runtime)

    def supported_runtimes(self) -> tuple[str, ...]:
        # Full and LoRA models export; INT8 and bitsandbytes ones say why not (T5QAModel.onnx_export_refusal).
        return ("torch", "onnx")
