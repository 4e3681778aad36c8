"""Evaluation shared by every architecture: calibrate the no-answer threshold, predict, score officially."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qa_common.adapter import QAModel, RawPrediction
from qa_common.data.examples import SquadExample
from qa_common.scoring import apply_no_answer_threshold, choose_no_answer_threshold, score_predictions

DEFAULT_NO_ANSWER_THRESHOLD = 0.5  # sigmoid(0): answer when the best span outscores the null span


@dataclass
class Evaluation:
    """Predictions and official scores of one model on one dataset.

    ``scores`` are the official figures at the calibrated threshold (the official script run on the best
    non-empty spans with the no-answer probabilities and ``--na-prob-thresh``); ``answer_all_scores`` those
    of answering every question. ``predictions`` are what the server answers (threshold applied).
    """

    raw: dict[str, RawPrediction]
    predictions: dict[str, str]
    no_answer_probabilities: dict[str, float]
    scores: dict[str, Any]
    answer_all_scores: dict[str, Any]

    def metrics(self) -> dict[str, float]:
        """Flat metric dict with the shared names every architecture logs."""
        metrics = {key: float(value) for key, value in self.scores.items()
                   if not key.startswith("best_") and key not in ("total",)}
        metrics["eval_questions"] = float(self.scores["total"])
        for key in ("exact", "f1", "HasAns_exact", "HasAns_f1"):
            if key in self.answer_all_scores:
                metrics[f"answer_all_{key}"] = float(self.answer_all_scores[key])
        for key in ("best_exact", "best_exact_thresh", "best_f1", "best_f1_thresh"):
            metrics[key] = float(self.answer_all_scores[key])
        return metrics


def raw_outputs(raw: dict[str, RawPrediction]) -> tuple[dict[str, str], dict[str, float]]:
    return ({qid: p.text for qid, p in raw.items()}, {qid: p.no_answer_probability for qid, p in raw.items()})


def calibrate_threshold(model: QAModel, examples: Sequence[SquadExample], *, metric: str = "exact",
                        rule: str = "one-se", batch_size: int = 64,
                        progress: bool = False) -> tuple[float, dict[str, Any]]:
    """The no-answer threshold chosen by ``metric`` and ``rule`` on ``examples`` (data the model did not
    train on); see `qa_common.scoring.choose_no_answer_threshold`.

    Returns the threshold and the official scores of the calibration set at that threshold.
    """
    raw = model.predict(examples, batch_size=batch_size, progress=progress)
    texts, probabilities = raw_outputs(raw)
    threshold = choose_no_answer_threshold(examples, texts, probabilities, metric=metric, rule=rule)
    return threshold, score_predictions(examples, texts, probabilities, no_answer_threshold=threshold)


def evaluate(model: QAModel, examples: Sequence[SquadExample], no_answer_threshold: float, *,
             batch_size: int = 64, progress: bool = False) -> Evaluation:
    """Predict ``examples``, apply ``no_answer_threshold`` and score with the official SQuAD 2.0 procedure."""
    raw = model.predict(examples, batch_size=batch_size, progress=progress)
    texts, probabilities = raw_outputs(raw)
    served = apply_no_answer_threshold(texts, probabilities, no_answer_threshold)
    return Evaluation(
        raw=raw,
        predictions=served,
        no_answer_probabilities=probabilities,
        scores=score_predictions(examples, texts, probabilities, no_answer_threshold=no_answer_threshold),
        answer_all_scores=score_predictions(examples, texts, probabilities),
    )


def score_table(rows: dict[str, dict[str, float]], keys: Sequence[str]) -> str:
    """A markdown table: one row per named score dict, one column per key."""
    header = "| | " + " | ".join(keys) + " |"
    lines = [header, "|" + " --- |" * (len(keys) + 1)]
    for name, values in rows.items():
        cells = [f"{values[key]:.2f}" if isinstance(values.get(key), float) else str(values.get(key, ""))
                 for key in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
