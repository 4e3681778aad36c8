"""The mamba_qa adapter: registered under the ``squad_qa.adapters`` entry point as ``mamba_qa``."""

from __future__ import annotations

from pathlib import Path

from mamba_qa.config import PRESETS, MambaQAConfig
from mamba_qa.model import MambaQAModel, build_model, load_model
from qa_common.adapter import Adapter, ModelInfo
from qa_common.config import build_config


class MambaAdapter(Adapter):
    name = "mamba_qa"
    config_class = MambaQAConfig
    presets = PRESETS
    default_preset = "mamba-130m"

    def build(self, config: MambaQAConfig) -> MambaQAModel:
        return build_model(config)

    def load(self, directory: Path, *, runtime: str = "torch") -> MambaQAModel:
        if runtime != "torch":
            raise ValueError(f"mamba_qa runs on torch only (asked for {runtime!r}): Mamba exports to ONNX only at "
                             "a fixed sequence length")
        info = ModelInfo.read(directory)
        return load_model(Path(directory), build_config(MambaQAConfig, info.config))
