"""The per-architecture protocol and the registry that finds architecture packages through entry points.

An architecture package (bert_qa, ...) registers one ``Adapter`` under the entry-point group
``squad_qa.adapters``; shared code never names an architecture. An adapter builds a ``QAModel`` from its
typed config (presets are named layers of that config) and loads a saved one back.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from qa_common.data.examples import SquadExample

ENTRY_POINT_GROUP = "squad_qa.adapters"
MODEL_INFO_FILE = "squad_qa.json"


class HardwareUnavailableError(RuntimeError):
    """A variant needs hardware this machine lacks (a CUDA GPU for bitsandbytes, say); the CLI prints the
    message as one line and exits 2."""


@dataclass(frozen=True)
class RawPrediction:
    """What a model says about one question before the no-answer threshold is applied.

    ``text`` is the best non-empty answer, ``no_answer_probability`` the model's probability that the question
    has no answer in the context, ``score`` the model's probability for ``text`` (architecture-defined, in
    [0, 1]), ``n_best`` the next candidates as (text, score) pairs, best first.
    """

    text: str
    no_answer_probability: float
    score: float
    n_best: tuple[tuple[str, float], ...] = ()


@dataclass
class ParameterCounts:
    total: int
    trainable: int
    non_zero: int


class QAModel(abc.ABC):
    """A question-answering model of one architecture, trainable by the shared job and servable by the contract.

    ``module`` is the ``torch.nn.Module`` the shared job trains with HF ``Trainer``: its ``forward(**batch)``
    returns an object with ``.loss`` when the batch holds labels.
    """

    adapter_name: ClassVar[str]

    config: Any
    module: Any

    @abc.abstractmethod
    def training_dataset(self, examples: Sequence[SquadExample]) -> Any:
        """A torch ``Dataset`` of labelled features for ``examples``."""

    @abc.abstractmethod
    def data_collator(self) -> Any:
        """The collator that batches ``training_dataset`` items (dynamic padding)."""

    @abc.abstractmethod
    def predict(
        self, examples: Sequence[SquadExample], *, batch_size: int = 32, progress: bool = False
    ) -> dict[str, RawPrediction]:
        """Raw predictions for ``examples`` keyed by question id (no threshold applied)."""

    @abc.abstractmethod
    def save(self, directory: Path) -> None:
        """Write the model so ``Adapter.load(directory)`` restores it; the caller writes MODEL_INFO_FILE."""

    def prepare(self, examples: Sequence[SquadExample]) -> dict[str, float]:
        """Fit what depends on the training data (a vocabulary, embeddings) before training; called once by the
        training job with the training examples, before parameters are counted. Returns figures to log (e.g.
        embedding coverage). Deterministic: a resumed job prepares the same model again. Default: nothing."""
        return {}

    def training_module(self) -> Any:
        """The module the training job hands to HF Trainer: ``module`` itself by default (a wrapper adding a
        teacher's outputs to the loss under distillation, say). Must return the same object on every call. Under
        the job's ``torch_compile``, a module with a ``compile_layers(mode)`` method compiles its own regions with
        it, and the Trainer does not compile the module whole."""
        return self.module

    def training_callbacks(self) -> list[Any]:
        """HF ``TrainerCallback``s the training job adds to its own (a pruning schedule that follows the step,
        say). Default: none."""
        return []

    def finish_training(self) -> dict[str, float]:
        """Called once by the training job after training, before calibration: turn what training needed into
        the model to evaluate and ship (apply pruning masks, drop a teacher). Returns figures to log."""
        return {}

    def saved_figures(self, directory: Path) -> dict[str, float]:
        """Figures measured from the model as saved in ``directory`` (e.g. weight density, compressed size),
        logged by the training job with the size on disk. Default: none."""
        return {}

    def configure_inference(self, options: Any) -> dict[str, str]:
        """Prepare a loaded model for answering as ``options`` (`qa_common.extractive.InferenceOptions`) say;
        returns what was applied. Extractive readers implement it; other readers keep their own inference path
        and apply nothing (an empty dict)."""
        return {}

    def to(self, device: str) -> QAModel:
        if self.module is not None:
            self.module.to(device)
        return self

    @property
    def device(self) -> str:
        import torch

        for parameter in self.module.parameters():
            return str(parameter.device)
        return str(torch.device("cpu"))

    def parameter_counts(self) -> ParameterCounts:
        total = trainable = non_zero = 0
        for parameter in self.module.parameters():
            total += parameter.numel()
            non_zero += int((parameter != 0).sum())
            if parameter.requires_grad:
                trainable += parameter.numel()
        return ParameterCounts(total=total, trainable=trainable, non_zero=non_zero)

    def model_only_inputs(self, batch_size: int, sequence_length: int) -> dict[str, Any]:
        """Synthetic inputs of fixed shape for the model-only throughput benchmark."""
        raise NotImplementedError(f"{type(self).__name__} has no model-only benchmark inputs")

    def export_onnx(self, directory: Path, examples: Sequence[SquadExample]) -> dict[str, float]:
        """Export to ONNX in ``directory``; return parity figures measured on features of ``examples``."""
        raise NotImplementedError(f"{type(self).__name__} does not export to ONNX")

    def onnx_export_refusal(self) -> str | None:
        """Why this model cannot be exported although its adapter supports ONNX (a variant whose layers have no
        ONNX form that runs like PyTorch, say), or None. The training job then skips the export and says why."""
        return None


class Adapter(abc.ABC):
    """Factory of one architecture's models: its config type, presets, building and loading."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    presets: ClassVar[Mapping[str, Mapping[str, Any]]]
    default_preset: ClassVar[str]

    def config(self, preset: str | None = None, overrides: Mapping[str, Any] | None = None) -> Any:
        from qa_common.config import build_config

        preset = preset or self.default_preset
        if preset not in self.presets:
            raise KeyError(f"{self.name} has no preset {preset!r}; presets: {', '.join(sorted(self.presets))}")
        return build_config(self.config_class, self.presets[preset], overrides or {})

    @abc.abstractmethod
    def build(self, config: Any) -> QAModel:
        """A new model for training, initialised as ``config`` says (pretrained weights or random)."""

    @abc.abstractmethod
    def load(self, directory: Path, *, runtime: str = "torch") -> QAModel:
        """Load a model saved by ``QAModel.save``; runtime "onnx" runs the exported graph instead."""

    def supported_runtimes(self) -> tuple[str, ...]:
        return ("torch",)


@dataclass
class ModelInfo:
    """What lives beside a saved model: which adapter loads it, its config, its calibrated threshold."""

    adapter: str
    adapter_class: str
    config: dict[str, Any]
    no_answer_threshold: float = 0.5
    threshold_source: str = "default"
    runtimes: list[str] = field(default_factory=lambda: ["torch"])
    extra: dict[str, Any] = field(default_factory=dict)

    def write(self, directory: Path) -> None:
        path = Path(directory) / MODEL_INFO_FILE
        path.write_text(json.dumps(self.__dict__, indent=2, sort_keys=True))

    @classmethod
    def read(cls, directory: Path) -> ModelInfo:
        path = Path(directory) / MODEL_INFO_FILE
        if not path.exists():
            raise FileNotFoundError(f"{directory} is not a squad-qa model directory: {MODEL_INFO_FILE} is missing")
        return cls(**json.loads(path.read_text()))


def available_adapters() -> dict[str, Any]:
    """Entry points of installed architecture packages, by adapter name (not yet imported)."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def get_adapter(name: str) -> Adapter:
    """Import and instantiate the adapter registered under ``name``."""
    points = available_adapters()
    if name not in points:
        known = ", ".join(sorted(points)) or "none installed"
        raise KeyError(f"no squad-qa architecture named {name!r} (installed: {known})")
    adapter_class = points[name].load()
    return adapter_class()


def adapter_class_path(adapter: Adapter) -> str:
    """``module:Class`` of an adapter, stored with saved models so loading needs no entry-point lookup."""
    return f"{type(adapter).__module__}:{type(adapter).__qualname__}"


def load_model(directory: Path, *, runtime: str = "torch") -> tuple[QAModel, ModelInfo]:
    """Load a saved squad-qa model of any architecture and its info.

    The adapter is imported from the ``module:Class`` path recorded at save time, so a model logged with its
    code (MLflow ``code_paths``) loads where the architecture package is not installed.
    """
    import importlib

    info = ModelInfo.read(directory)
    module_name, _, class_name = info.adapter_class.partition(":")
    adapter = getattr(importlib.import_module(module_name), class_name)()
    return adapter.load(Path(directory), runtime=runtime), info
