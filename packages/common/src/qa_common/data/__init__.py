"""SQuAD data: the example type, readers with validation, writing back to the official layout, splitting."""

from qa_common.data.examples import Answer, SquadExample
from qa_common.data.readers import (
    MAX_CONTEXT_CHARS,
    LoadedSquad,
    SkippedRecord,
    SquadFormatError,
    examples_from_records,
    load_squad,
    read_hub_dataset,
    read_jsonl,
    read_squad_json,
    split_by_article,
    to_official_json,
    write_squad_json,
)

__all__ = [
    "MAX_CONTEXT_CHARS",
    "Answer",
    "LoadedSquad",
    "SkippedRecord",
    "SquadExample",
    "SquadFormatError",
    "examples_from_records",
    "load_squad",
    "read_hub_dataset",
    "read_jsonl",
    "read_squad_json",
    "split_by_article",
    "to_official_json",
    "write_squad_json",
]
