"""The contract every architecture adapter meets, checked the same way for all of them.

A package runs it against its adapter with a few lines (pytest collects the subclass, never this base)::

    from qa_common.testing.contract import AdapterContract

    class TestBertContract(AdapterContract):
        adapter_name = "bert_qa"
        preset = "tiny"

The suite finds the adapter through its entry point, builds its configs, checks training labels and
predictions on the SQuAD sample in ``data/sample``, trains the tiny preset for a few seconds and asserts it
learns, then checks save/load, ONNX export (where the adapter supports it) and the served contract on that
trained model, which all tests of the class share. Everything runs on CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

from qa_common.adapter import (
    Adapter,
    ModelInfo,
    QAModel,
    RawPrediction,
    adapter_class_path,
    available_adapters,
    get_adapter,
    load_model,
)
from qa_common.config import ConfigError, build_config, config_to_dict
from qa_common.data.examples import SquadExample
from qa_common.data.readers import load_squad
from qa_common.scoring import normalize_answer, score_predictions
from qa_common.serving import OUTPUT_FIELDS, InvalidRequestError, QAService

SAMPLE_DIRECTORY_VARIABLE = "SQUAD_QA_SAMPLE_DIR"
TRAIN_SAMPLE = "train-v2.0-sample.json"
VALIDATION_SAMPLE = "validation-v2.0-sample.json"
ONNX_MAX_LOGIT_DIFFERENCE = 1e-3  # the training job refuses an export above this too


# ---------------------------------------------------------------------------------------------------------
# Data


def sample_directory() -> Path:
    """The shipped SQuAD sample: ``$SQUAD_QA_SAMPLE_DIR``, else ``data/sample`` above cwd or this file."""
    configured = os.environ.get(SAMPLE_DIRECTORY_VARIABLE)
    if configured:
        return Path(configured)
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for folder in (start, *start.parents):
            if (folder / "data" / "sample" / TRAIN_SAMPLE).is_file():
                return folder / "data" / "sample"
    raise FileNotFoundError(
        f"no data/sample/{TRAIN_SAMPLE} above {Path.cwd()} or {Path(__file__).parent}; "
        f"set {SAMPLE_DIRECTORY_VARIABLE} to the folder holding {TRAIN_SAMPLE} and {VALIDATION_SAMPLE}"
    )


@functools.cache
def sample_examples(file_name: str) -> tuple[SquadExample, ...]:
    """All questions of one sample file (read once per session)."""
    return tuple(load_squad(sample_directory() / file_name).examples)


def learning_examples(count: int) -> list[SquadExample]:
    """The ``count`` answerable training-sample questions with the shortest contexts (few windows: fast)."""
    answerable = [example for example in sample_examples(TRAIN_SAMPLE) if example.answers]
    return sorted(answerable, key=lambda example: (len(example.context), example.id))[:count]


def prediction_examples() -> list[SquadExample]:
    """Validation-sample questions: the first 16 (answerable and not) and one from each of the 4 longest contexts."""
    examples = sample_examples(VALIDATION_SAMPLE)
    first_of_context: dict[str, SquadExample] = {}
    for example in examples:
        first_of_context.setdefault(example.context, example)
    longest = sorted(first_of_context.values(), key=lambda example: (-len(example.context), example.id))[:4]
    return list({example.id: example for example in [*examples[:16], *longest]}.values())


# ---------------------------------------------------------------------------------------------------------
# Helpers a package's own tests can use too


@dataclass
class LearningCheck:
    """How the contract checks that a tiny model learns; a package tunes it with ``learning_overrides``.

    The model trains ``steps`` AdamW steps on the ``examples`` shortest answerable training-sample questions.
    It passes when its loss on them (no dropout) falls below ``max_loss_ratio`` times the loss before
    training, and its answer-everything F1 on them rises from below ``max_f1_before`` to above
    ``min_f1_after``.
    """

    examples: int = 16
    steps: int = 30
    learning_rate: float = 2e-3
    batch_size: int = 16
    seed: int = 0
    max_loss_ratio: float = 0.3
    max_f1_before: float = 20.0
    min_f1_after: float = 60.0


@dataclass
class TrainedModel:
    """The model the class's tests share, with what was measured before and after training it."""

    model: QAModel
    config: Any
    examples: list[SquadExample]
    loss_before: float
    loss_after: float
    f1_before: float
    f1_after: float
    step_losses: list[float]


@dataclass
class SavedModel:
    directory: Path
    no_answer_threshold: float


def save_model(
    model: QAModel,
    adapter: Adapter,
    config: Any,
    directory: Path,
    *,
    no_answer_threshold: float = 0.5,
    runtimes: Sequence[str] = ("torch",),
) -> Path:
    """Write ``model`` and its ModelInfo to ``directory`` as the training job does, so ``load_model`` reads it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save(directory)
    ModelInfo(
        adapter=adapter.name,
        adapter_class=adapter_class_path(adapter),
        config=config_to_dict(config),
        no_answer_threshold=no_answer_threshold,
        threshold_source="contract test",
        runtimes=list(runtimes),
    ).write(directory)
    return directory


def _batches(model: QAModel, examples: Sequence[SquadExample], batch_size: int) -> list[dict[str, Any]]:
    dataset = model.training_dataset(examples)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         collate_fn=model.data_collator())
    device = next(model.module.parameters()).device  # the model may have been moved to a GPU
    return [{key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
            for batch in loader]


def mean_loss(model: QAModel, examples: Sequence[SquadExample], batch_size: int = 16) -> float:
    """The training loss over all features of ``examples``, without dropout or gradients."""
    model.module.eval()
    total = count = 0.0
    with torch.no_grad():
        for batch in _batches(model, examples, batch_size):
            size = len(next(iter(batch.values())))
            total += float(model.module(**batch).loss) * size
            count += size
    return total / count


def train_briefly(model: QAModel, examples: Sequence[SquadExample], check: LearningCheck) -> list[float]:
    """``check.steps`` AdamW steps of ``model.training_module()`` (what the job trains) over the features of
    ``examples`` (cycled in order); the loss of each step."""
    torch.manual_seed(check.seed)
    batches = _batches(model, examples, check.batch_size)
    trained = model.training_module()
    optimizer = torch.optim.AdamW([p for p in trained.parameters() if p.requires_grad], lr=check.learning_rate)
    trained.train()
    losses = []
    for batch in itertools.islice(itertools.cycle(batches), check.steps):
        loss = trained(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.module.eval()
    return losses


def answer_all_f1(model: QAModel, examples: Sequence[SquadExample]) -> float:
    """Official F1 of the best non-empty answer of every question (no threshold)."""
    raw = model.predict(examples)
    return float(score_predictions(examples, {qid: prediction.text for qid, prediction in raw.items()})["f1"])


def assert_same_predictions(
    actual: Mapping[str, RawPrediction], expected: Mapping[str, RawPrediction], *, atol: float
) -> None:
    """Same question ids and texts; probabilities and scores within ``atol``."""
    assert set(actual) == set(expected)
    for qid, prediction in expected.items():
        assert actual[qid].text == prediction.text, qid
        assert actual[qid].no_answer_probability == pytest.approx(prediction.no_answer_probability, abs=atol), qid
        assert actual[qid].score == pytest.approx(prediction.score, abs=atol), qid


def assert_lora_saves_reloads_and_merges(model: QAModel, adapter: Adapter, config: Any,
                                         examples: Sequence[SquadExample], directory: Path) -> None:
    """A peft (LoRA) ``model`` saved unmerged reloads with its adapter and the same answers; saved with
    ``lora_merge`` it reloads as a plain model whose answers and logits equal the unmerged ones."""
    unmerged = model.predict(examples)
    save_model(model, adapter, config, directory / "adapter")
    assert (directory / "adapter" / "adapter" / "adapter_model.safetensors").is_file()
    loaded, _ = load_model(directory / "adapter")
    assert loaded.is_peft
    assert_same_predictions(loaded.predict(examples), unmerged, atol=1e-6)

    merged_config = dataclasses.replace(config, lora_merge=True)
    model.config = merged_config
    save_model(model, adapter, merged_config, directory / "merged")
    merged, _ = load_model(directory / "merged")
    assert not merged.is_peft and not (directory / "merged" / "adapter").exists()
    assert_same_predictions(merged.predict(examples), unmerged, atol=1e-5)
    (batch,) = _batches(model, examples, 16)[:1]
    with torch.no_grad():
        difference = (merged.module(**batch).logits - model.module(**batch).logits).abs().max()
    assert difference < 1e-4


def _plain(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _answer_cuts_a_word(example: SquadExample) -> bool:
    """True when the gold answer starts or ends inside a word: no tokenizer can label it exactly."""
    answer, context = example.answers[0], example.context
    cut_at_start = answer.start > 0 and context[answer.start - 1].isalnum() and answer.text[:1].isalnum()
    cut_at_end = answer.end < len(context) and context[answer.end].isalnum() and answer.text[-1:].isalnum()
    return cut_at_start or cut_at_end


def _threshold_between(probabilities: Sequence[float]) -> float:
    """A threshold halfway between the two middle distinct probabilities: it splits the questions in two."""
    distinct = sorted(set(probabilities))
    if len(distinct) < 2:
        return 0.5
    middle = len(distinct) // 2
    return (distinct[middle - 1] + distinct[middle]) / 2


# ---------------------------------------------------------------------------------------------------------
# The contract


class AdapterContract:
    """Subclass as ``Test<Arch>Contract`` and set ``adapter_name`` and a tiny ``preset``.

    ``overrides`` are config overrides applied on top of the preset; ``learning_overrides`` tune
    ``LearningCheck`` for an architecture that learns at another pace. A model that is not an
    ``ExtractiveQAModel`` overrides ``labelled_answers``.
    """

    adapter_name: ClassVar[str]
    preset: ClassVar[str]
    overrides: ClassVar[Mapping[str, Any]] = {}
    learning_overrides: ClassVar[Mapping[str, Any]] = {}

    # -- hooks ------------------------------------------------------------------------------------------

    def labelled_answers(self, model: QAModel, examples: Sequence[SquadExample]) -> list[tuple[int, str | None]]:
        """(example index, answer text its label encodes) for every training feature; None for "no answer".

        The default reads extractive features back: token start/end labels through the character offsets of
        the window, position 0 (the [CLS] token) meaning no answer in this window.
        """
        from qa_common.extractive import FeatureDataset

        dataset = model.training_dataset(examples)
        if not isinstance(dataset, FeatureDataset):
            raise NotImplementedError(
                f"{type(model).__name__} does not train on extractive features: override labelled_answers"
            )
        labelled: list[tuple[int, str | None]] = []
        for index in range(len(dataset)):
            item = dataset[index]
            start, end = item["start_positions"], item["end_positions"]
            example_index = int(dataset.features.example_index[index])
            if start == 0 or end == 0:
                assert start == end == 0, f"feature {index}: half a no-answer label ({start}, {end})"
                labelled.append((example_index, None))
                continue
            offsets = dataset.features.offsets[index]
            assert start <= end < len(item["input_ids"]), f"feature {index}: label ({start}, {end})"
            assert offsets[start, 0] >= 0 and offsets[end, 1] >= 0, f"feature {index}: label outside the context"
            context = examples[example_index].context
            labelled.append((example_index, context[offsets[start, 0] : offsets[end, 1]]))
        return labelled

    # -- fixtures shared by the class's tests --------------------------------------------------------------

    @pytest.fixture(scope="class")
    def adapter(self) -> Adapter:
        return get_adapter(self.adapter_name)

    @pytest.fixture(scope="class")
    def model_config(self, adapter: Adapter) -> Any:
        return adapter.config(self.preset, self.overrides)

    @pytest.fixture(scope="class")
    def learning(self) -> LearningCheck:
        return build_config(LearningCheck, self.learning_overrides)

    @pytest.fixture(scope="class")
    def trained(self, adapter: Adapter, model_config: Any, learning: LearningCheck) -> TrainedModel:
        torch.manual_seed(learning.seed)
        model = adapter.build(model_config).to("cpu")
        model.prepare(list(sample_examples(TRAIN_SAMPLE)))
        examples = learning_examples(learning.examples)
        loss_before = mean_loss(model, examples, learning.batch_size)
        f1_before = answer_all_f1(model, examples)
        step_losses = train_briefly(model, examples, learning)
        return TrainedModel(
            model=model,
            config=model_config,
            examples=examples,
            loss_before=loss_before,
            loss_after=mean_loss(model, examples, learning.batch_size),
            f1_before=f1_before,
            f1_after=answer_all_f1(model, examples),
            step_losses=step_losses,
        )

    @pytest.fixture(scope="class")
    def examples(self) -> list[SquadExample]:
        return prediction_examples()

    @pytest.fixture(scope="class")
    def predictions(self, trained: TrainedModel, examples: list[SquadExample]) -> dict[str, RawPrediction]:
        return trained.model.predict(examples, batch_size=8)

    @pytest.fixture(scope="class")
    def saved(self, adapter: Adapter, trained: TrainedModel, predictions, tmp_path_factory) -> SavedModel:
        threshold = _threshold_between([p.no_answer_probability for p in predictions.values()])
        directory = tmp_path_factory.mktemp(f"{self.adapter_name}-model")
        save_model(trained.model, adapter, trained.config, directory, no_answer_threshold=threshold)
        return SavedModel(directory, threshold)

    # -- registry and configuration ------------------------------------------------------------------------

    def test_adapter_is_found_through_its_entry_point(self, adapter: Adapter) -> None:
        points = available_adapters()
        assert self.adapter_name in points, f"no squad_qa.adapters entry point named {self.adapter_name!r}"
        assert type(adapter) is points[self.adapter_name].load()
        assert isinstance(adapter, Adapter)
        assert adapter.name == self.adapter_name
        # Saved models record this path and load through it without the entry point.
        module_name, _, class_name = adapter_class_path(adapter).partition(":")
        assert getattr(importlib.import_module(module_name), class_name) is type(adapter)

    def test_presets_build_typed_configs(self, adapter: Adapter) -> None:
        assert self.preset in adapter.presets
        assert adapter.default_preset in adapter.presets
        for name, values in adapter.presets.items():
            config = adapter.config(name)
            assert isinstance(config, adapter.config_class), name
            for key, value in values.items():
                assert _plain(getattr(config, key)) == _plain(value), f"preset {name}: {key}"
            # ModelInfo stores config_to_dict; loading rebuilds the config from it.
            assert build_config(adapter.config_class, config_to_dict(config)) == config, name
        with pytest.raises(KeyError, match="no-such-preset"):
            adapter.config("no-such-preset")

    def test_overrides_from_the_command_line_are_typed(self, adapter: Adapter, model_config: Any) -> None:
        integers = [f.name for f in dataclasses.fields(model_config) if type(getattr(model_config, f.name)) is int]
        assert integers, "the config has no integer setting to override"
        name = integers[0]
        wanted = getattr(model_config, name) + 1
        config = adapter.config(self.preset, {**self.overrides, name: f"{wanted}.0"})  # MLproject sends floats
        assert getattr(config, name) == wanted
        assert type(getattr(config, name)) is int

    def test_unknown_config_key_is_an_error(self, adapter: Adapter) -> None:
        with pytest.raises(ConfigError, match="no_such_setting"):
            adapter.config(self.preset, {**self.overrides, "no_such_setting": "1"})

    # -- features and predictions --------------------------------------------------------------------------

    def test_training_labels_point_at_the_gold_answers(self, trained: TrainedModel) -> None:
        examples = [*sample_examples(TRAIN_SAMPLE), *sample_examples(VALIDATION_SAMPLE)]
        texts_by_example: dict[int, list[str | None]] = defaultdict(list)
        for example_index, text in self.labelled_answers(trained.model, examples):
            texts_by_example[example_index].append(text)
        assert set(texts_by_example) == set(range(len(examples))), "some examples have no training feature"
        for index, example in enumerate(examples):
            texts = texts_by_example[index]
            if not example.answers:
                assert texts == [None] * len(texts), f"{example.id}: unanswerable but labelled {texts}"
                continue
            gold = example.answers[0].text
            answers = [text for text in texts if text is not None]
            assert answers, f"{example.id}: no feature is labelled with its answer {gold!r}"
            for text in answers:
                if _answer_cuts_a_word(example):
                    assert gold in text, example.id
                else:
                    assert normalize_answer(text) == normalize_answer(gold), f"{example.id}: {text!r} != {gold!r}"

    def test_predict_answers_every_question_from_its_context(
        self, trained: TrainedModel, examples: list[SquadExample], predictions: dict[str, RawPrediction]
    ) -> None:
        assert set(predictions) == {example.id for example in examples}
        for example in examples:
            prediction = predictions[example.id]
            assert isinstance(prediction, RawPrediction)
            assert prediction.text in example.context, example.id  # "" is in every context
            assert 0.0 <= prediction.no_answer_probability <= 1.0, example.id
            assert 0.0 <= prediction.score <= 1.0, example.id
            for text, score in prediction.n_best:
                assert text and text in example.context, example.id
                assert 0.0 <= score <= 1.0, example.id
        assert all(predictions[example.id].text for example in examples), "a context with words gave no answer"
        assert trained.model.predict([]) == {}

    def test_predictions_do_not_depend_on_training_mode_or_batching(
        self, trained: TrainedModel, examples: list[SquadExample], predictions: dict[str, RawPrediction]
    ) -> None:
        model = trained.model
        model.module.train()  # as left by a training loop: predicting must not apply dropout
        try:
            in_training_mode = model.predict(examples, batch_size=8)
        finally:
            model.module.eval()
        assert_same_predictions(in_training_mode, predictions, atol=1e-6)
        one_by_one = {example.id: model.predict([example])[example.id] for example in examples}
        assert_same_predictions(one_by_one, predictions, atol=1e-4)

    # -- learning ------------------------------------------------------------------------------------------

    def test_model_learns_the_examples_it_trains_on(self, trained: TrainedModel, learning: LearningCheck) -> None:
        assert all(math.isfinite(loss) for loss in trained.step_losses)
        assert len(trained.step_losses) == learning.steps
        assert trained.loss_after < learning.max_loss_ratio * trained.loss_before, (
            f"loss {trained.loss_before:.3f} -> {trained.loss_after:.3f}"
        )
        assert trained.f1_before < learning.max_f1_before, f"F1 before training {trained.f1_before:.1f}"
        assert trained.f1_after > learning.min_f1_after, (
            f"F1 {trained.f1_before:.1f} -> {trained.f1_after:.1f} after {learning.steps} steps"
        )

    # -- saving, loading, ONNX -----------------------------------------------------------------------------

    def test_save_and_load_give_identical_predictions(
        self,
        adapter: Adapter,
        trained: TrainedModel,
        saved: SavedModel,
        examples: list[SquadExample],
        predictions: dict[str, RawPrediction],
    ) -> None:
        loaded = adapter.load(saved.directory)
        assert type(loaded) is type(trained.model)
        assert loaded.config == trained.config
        assert_same_predictions(loaded.predict(examples, batch_size=8), predictions, atol=1e-6)

        model, info = load_model(saved.directory)  # through the recorded adapter class, as serving does
        assert info.adapter == self.adapter_name
        assert info.no_answer_threshold == saved.no_answer_threshold
        assert info.config == config_to_dict(trained.config)
        assert_same_predictions(model.predict(examples, batch_size=8), predictions, atol=1e-6)

    @pytest.fixture(scope="class")
    def onnx_parity(
        self, adapter: Adapter, trained: TrainedModel, saved: SavedModel, examples: list[SquadExample]
    ) -> dict[str, float]:
        """The trained model exported to ONNX beside the saved one (as the job does); its parity figures."""
        if "onnx" not in adapter.supported_runtimes():
            pytest.skip(f"{self.adapter_name} does not run on ONNX Runtime")
        refusal = trained.model.onnx_export_refusal()
        if refusal:
            pytest.skip(f"{self.adapter_name} refuses to export this model: {refusal}")
        parity = trained.model.export_onnx(saved.directory, examples)
        info = ModelInfo.read(saved.directory)
        info.runtimes = ["torch", "onnx"]
        info.write(saved.directory)
        return parity

    def test_onnx_export_matches_torch(
        self,
        adapter: Adapter,
        saved: SavedModel,
        onnx_parity: dict[str, float],
        examples: list[SquadExample],
        predictions: dict[str, RawPrediction],
    ) -> None:
        assert onnx_parity["onnx_max_abs_logit_diff"] < ONNX_MAX_LOGIT_DIFFERENCE
        assert onnx_parity["onnx_parity_features"] >= len(examples)
        assert onnx_parity["onnx_size_bytes"] > 0

        onnx_model = adapter.load(saved.directory, runtime="onnx")
        assert_same_predictions(onnx_model.predict(examples, batch_size=8), predictions, atol=1e-3)

    # -- the served contract -------------------------------------------------------------------------------

    def test_service_applies_the_no_answer_threshold(
        self, trained: TrainedModel, examples: list[SquadExample], predictions: dict[str, RawPrediction]
    ) -> None:
        records = [{"question": example.question, "context": example.context} for example in examples]
        raw = [predictions[example.id] for example in examples]

        answering = QAService(trained.model, no_answer_threshold=1.0).answer(records)
        assert [tuple(record) for record in answering] == [OUTPUT_FIELDS] * len(records)
        for record, prediction in zip(answering, raw):
            assert record["answer"] == prediction.text != ""
            assert record["no_answer_probability"] == pytest.approx(prediction.no_answer_probability, abs=1e-6)
            assert record["score"] == pytest.approx(prediction.score, abs=1e-6)

        refusing = QAService(trained.model, no_answer_threshold=-1.0).answer(records)
        for record, prediction in zip(refusing, raw):
            assert record["answer"] == ""
            assert record["no_answer_probability"] == pytest.approx(prediction.no_answer_probability, abs=1e-6)
            assert record["score"] == record["no_answer_probability"]

        threshold = _threshold_between([prediction.no_answer_probability for prediction in raw])
        splitting = QAService(trained.model, no_answer_threshold=threshold).answer(records)
        answered = [bool(record["answer"]) for record in splitting]
        assert answered == [prediction.no_answer_probability <= threshold for prediction in raw]
        if len({prediction.no_answer_probability for prediction in raw}) > 1:
            assert 0 < sum(answered) < len(answered)

        with pytest.raises(InvalidRequestError, match="record 1: missing field 'context'"):
            QAService(trained.model, no_answer_threshold=0.5).answer([records[0], {"question": "Who?"}])

    def test_service_serves_the_saved_model_with_its_threshold(
        self, saved: SavedModel, examples: list[SquadExample], predictions: dict[str, RawPrediction]
    ) -> None:
        service = QAService.from_directory(saved.directory)
        assert service.no_answer_threshold == saved.no_answer_threshold
        answers = service.answer([{"question": e.question, "context": e.context} for e in examples])
        expected = [
            predictions[e.id].text if predictions[e.id].no_answer_probability <= saved.no_answer_threshold else ""
            for e in examples
        ]
        assert [record["answer"] for record in answers] == expected
        if len({prediction.no_answer_probability for prediction in predictions.values()}) > 1:
            assert any(expected) and not all(expected)  # the saved threshold splits these questions
