"""BERT-family extractive question answering for squad-qa."""

from bert_qa.config import PRESETS, BertQAConfig

__all__ = ["PRESETS", "BertQAConfig"]
