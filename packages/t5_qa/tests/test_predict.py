"""How t5_qa turns per-window decodings into one prediction per question (T5QAModel.predict)."""

import math

from qa_common.data.examples import SquadExample
from t5_qa.adapter import T5Adapter


def test_the_best_window_wins_and_the_no_answer_probability_compares_the_models_scores(monkeypatch):
    model = T5Adapter().build(T5Adapter().config("tiny"))
    filler = " ".join(f"filler{index}" for index in range(150))
    context = f"Denver Broncos won the game. {filler} The Carolina Panthers lost. {filler} Peyton Manning retired."
    example = SquadExample("q", "Who won?", context, ())
    windows = model.windows([example], with_targets=False)
    assert len(windows) >= 3

    def ids(text):
        return model.tokenizer(text, add_special_tokens=False)["input_ids"]

    # Per window: (generated ids, answer log-probability, no-answer log-probability); the last window's answer
    # is the least likely, the first window's the most.
    per_window = [(ids("carolina panthers"), -0.9, -2.0)] * len(windows)
    per_window[0] = (ids("denver broncos"), -0.2, -3.0)
    per_window[-1] = (ids("peyton manning"), -1.5, -0.1)
    monkeypatch.setattr(model, "_decode_windows", lambda features, batch_size: per_window)
    prediction = model.predict([example])["q"]
    assert prediction.text == "Denver Broncos"  # the exact context substring, not the lower-cased spelling
    assert prediction.score == math.exp(-0.2)
    # The no-answer text against the best answer, in the window most sure there is an answer (-3.0).
    assert math.isclose(prediction.no_answer_probability, math.exp(-3.0) / (math.exp(-3.0) + math.exp(-0.2)))
    assert [text for text, _ in prediction.n_best] == ["Carolina Panthers", "Peyton Manning"]
