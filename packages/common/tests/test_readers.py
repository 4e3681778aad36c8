"""Tests of qa_common.data: reading and validating SQuAD files, JSONL and hub rows, writing, splitting."""

from __future__ import annotations

import copy
import json
import os
import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qa_common.data import (
    Answer,
    LoadedSquad,
    SquadExample,
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

FIXTURES = Path(__file__).parent / "fixtures"
V2_SLICE = FIXTURES / "squad_v2_slice.json"
V1_SLICE = FIXTURES / "squad_v1_slice.json"
V2_JSONL = FIXTURES / "squad_v2_slice.jsonl"
SHARED_DATA = Path(os.environ.get("SQUAD_SHARED_DATA", "/work/shared/data/squad"))

# The article and question every single-error test breaks: 1973_oil_crisis, paragraph 0, question 0.
ARTICLE = "1973_oil_crisis"
QUESTION_ID = "5725b33f6a3fe71400b8952d"


def _v2_document() -> dict[str, Any]:
    return json.loads(V2_SLICE.read_text(encoding="utf-8"))


def _write(tmp_path: Path, document: Any, name: str = "data.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def _target_article(document: dict[str, Any]) -> dict[str, Any]:
    return next(article for article in document["data"] if article["title"] == ARTICLE)


def _target_question(document: dict[str, Any]) -> dict[str, Any]:
    return _target_article(document)["paragraphs"][0]["qas"][0]


# ---------------------------------------------------------------------------------------------------------
# Real data


@pytest.mark.parametrize(
    ("name", "num_questions", "num_unanswerable", "num_articles", "version"),
    [
        ("train-v2.0.json", 8141, 4000, 23, "v2.0"),
        ("validation-v2.0.json", 1426, 834, 5, "v2.0"),
        ("extra-answerable-v1.1.json", 4557, 0, 13, "v1.1"),
    ],
)
def test_real_files_load_without_errors(
    name: str, num_questions: int, num_unanswerable: int, num_articles: int, version: str
) -> None:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"shared SQuAD data not found at {SHARED_DATA}")
    loaded = read_squad_json(path)
    assert len(loaded.examples) == num_questions
    assert sum(example.is_impossible for example in loaded.examples) == num_unanswerable
    assert len({example.title for example in loaded.examples}) == num_articles
    assert loaded.version == version
    assert loaded.num_skipped == 0
    assert loaded.source == str(path)


# ---------------------------------------------------------------------------------------------------------
# Fixture slices


def test_v2_slice_loads_every_question_with_its_answers() -> None:
    loaded = read_squad_json(V2_SLICE)
    assert isinstance(loaded, LoadedSquad)
    assert (len(loaded.examples), loaded.version, loaded.num_skipped) == (87, "v2.0", 0)
    assert sum(example.is_impossible for example in loaded.examples) == 53
    assert list(dict.fromkeys(example.title for example in loaded.examples)) == [
        "Sky_(United_Kingdom)",
        "1973_oil_crisis",
        "Construction",
        "University_of_Chicago",
    ]
    first = loaded.examples[0]
    assert first.id == "57092322efce8f15003a7db0"
    assert (
        first.question
        == "What company was formed by the merger of Sky Television and British Satellite Broadcasting?"
    )
    assert first.answers == (Answer("BSkyB", 98),) * 3
    assert first.context[98:103] == "BSkyB"
    assert not first.is_impossible
    for example in loaded.examples:
        for answer in example.answers:
            assert example.context[answer.start : answer.end] == answer.text


def test_v1_slice_loads_as_v1() -> None:
    loaded = read_squad_json(V1_SLICE)
    assert (len(loaded.examples), loaded.version) == (34, "v1.1")
    assert not any(example.is_impossible for example in loaded.examples)
    assert loaded.examples[0].title == "Super_Bowl_50"


def test_version_is_detected_from_is_impossible_without_a_version_field(tmp_path: Path) -> None:
    document = _v2_document()
    del document["version"]
    assert read_squad_json(_write(tmp_path, document)).version == "v2.0"
    v1_document = json.loads(V1_SLICE.read_text(encoding="utf-8"))
    del v1_document["version"]
    assert read_squad_json(_write(tmp_path, v1_document, "v1.json")).version == "v1.1"


def test_plausible_answers_are_ignored(tmp_path: Path) -> None:
    document = _v2_document()
    unanswerable = next(qa for qa in _target_article(document)["paragraphs"][0]["qas"] if qa["is_impossible"])
    unanswerable["plausible_answers"] = [{"text": "not in the context", "answer_start": 5}]
    loaded = read_squad_json(_write(tmp_path, document))
    assert next(example for example in loaded.examples if example.id == unanswerable["id"]).answers == ()


def test_error_message_lists_file_article_and_question() -> None:
    error = SquadFormatError("bad answer", source="dev.json", article="Normans", question_id="q1")
    assert str(error) == "dev.json, article 'Normans', question 'q1': bad answer"
    assert (error.source, error.article, error.question_id, error.message) == (
        "dev.json",
        "Normans",
        "q1",
        "bad answer",
    )
    assert str(SquadFormatError("empty")) == "empty"
    copied = pickle.loads(pickle.dumps(error))
    assert (str(copied), copied.article, copied.question_id) == (str(error), "Normans", "q1")


# ---------------------------------------------------------------------------------------------------------
# One test per validation error: the message names the file, the article and (when known) the question.


def _set_question_field(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        _target_question(document)[key] = value

    return mutate


def _delete_question_field(key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        del _target_question(document)[key]

    return mutate


def _set_first_answer(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        _target_question(document)["answers"][0][key] = value

    return mutate


def _mark_impossible(document: dict[str, Any]) -> None:
    _target_question(document)["is_impossible"] = True


def _drop_answers_of_answerable(document: dict[str, Any]) -> None:
    _target_question(document)["answers"] = []


def _duplicate_id(document: dict[str, Any]) -> None:
    # the second paragraph of the same article reuses the id of the first question
    _target_article(document)["paragraphs"][1]["qas"][0]["id"] = QUESTION_ID


QUESTION_ERRORS = {
    "id not a string": (_set_question_field("id", 17), "'id' must be a string, got int", None),
    "no question": (_delete_question_field("question"), "has no 'question'", QUESTION_ID),
    "question not a string": (
        _set_question_field("question", ["why"]),
        "'question' must be a string",
        QUESTION_ID,
    ),
    "answers not a list": (
        _set_question_field("answers", "oil"),
        "'answers' must be a list, got str",
        QUESTION_ID,
    ),
    "no answers field": (_delete_question_field("answers"), "has no 'answers' list", QUESTION_ID),
    "answer_start not an int": (
        _set_first_answer("answer_start", "20"),
        "must be an integer, got str",
        QUESTION_ID,
    ),
    "answer_start a bool": (
        _set_first_answer("answer_start", True),
        "must be an integer, got bool",
        QUESTION_ID,
    ),
    "answer text not a string": (
        _set_first_answer("text", 5),
        "'text' must be a string, got int",
        QUESTION_ID,
    ),
    "answer start shifted": (_set_first_answer("answer_start", 3), "is not at answer_start 3", QUESTION_ID),
    "answer text absent": (
        _set_first_answer("text", "price of tea"),
        "the text is not in the context",
        QUESTION_ID,
    ),
    "impossible with answers": (
        _mark_impossible,
        "'is_impossible' is true but the question has",
        QUESTION_ID,
    ),
    "answerable without answers": (
        _drop_answers_of_answerable,
        "'is_impossible' is false but the question has no answers",
        QUESTION_ID,
    ),
    "is_impossible not a bool": (
        _set_question_field("is_impossible", "no"),
        "must be true or false",
        QUESTION_ID,
    ),
    "duplicate id": (
        _duplicate_id,
        "duplicate question id (first seen in article '1973_oil_crisis')",
        QUESTION_ID,
    ),
}


@pytest.mark.parametrize("case", list(QUESTION_ERRORS))
def test_question_errors_name_file_article_and_question(case: str, tmp_path: Path) -> None:
    mutate, expected_message, expected_question_id = QUESTION_ERRORS[case]
    document = _v2_document()
    mutate(document)
    path = _write(tmp_path, document)
    with pytest.raises(SquadFormatError) as raised:
        read_squad_json(path)
    error = raised.value
    assert expected_message in error.message
    assert (error.source, error.article, error.question_id) == (str(path), ARTICLE, expected_question_id)
    assert str(path) in str(error)
    assert f"article '{ARTICLE}'" in str(error)
    if expected_question_id is not None:
        assert f"question '{expected_question_id}'" in str(error)


def test_shifted_answer_error_says_where_the_text_really_is(tmp_path: Path) -> None:
    document = _v2_document()
    answer = _target_question(document)["answers"][0]
    true_start = answer["answer_start"]
    answer["answer_start"] = true_start + 1
    with pytest.raises(SquadFormatError, match=f"the text occurs at offset {true_start}"):
        read_squad_json(_write(tmp_path, document))


def test_question_without_id_names_its_position(tmp_path: Path) -> None:
    document = _v2_document()
    del _target_question(document)["id"]
    path = _write(tmp_path, document)
    with pytest.raises(SquadFormatError) as raised:
        read_squad_json(path)
    assert raised.value.message == "question #0 of paragraph #0 has no 'id'"
    assert (raised.value.source, raised.value.article, raised.value.question_id) == (str(path), ARTICLE, None)


def test_v1_question_without_answers(tmp_path: Path) -> None:
    document = json.loads(V1_SLICE.read_text(encoding="utf-8"))
    question = document["data"][1]["paragraphs"][0]["qas"][2]
    question["answers"] = []
    path = _write(tmp_path, document)
    with pytest.raises(SquadFormatError) as raised:
        read_squad_json(path)
    assert "every SQuAD v1.1 question needs at least one" in raised.value.message
    assert (raised.value.source, raised.value.article, raised.value.question_id) == (
        str(path),
        "Teacher",
        question["id"],
    )


def _paragraph_mutation(
    key: str, value: Any = None, delete: bool = False
) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        paragraph = _target_article(document)["paragraphs"][0]
        if delete:
            del paragraph[key]
        else:
            paragraph[key] = value

    return mutate


PARAGRAPH_ERRORS = {
    "no context": (_paragraph_mutation("context", delete=True), "paragraph #0 has no 'context'"),
    "no qas": (_paragraph_mutation("qas", delete=True), "paragraph #0 has no 'qas'"),
    "qas not a list": (_paragraph_mutation("qas", {}), "paragraph #0: 'qas' must be a list, got dict"),
    "empty context": (_paragraph_mutation("context", "  \n"), "paragraph #0: the context is empty"),
    "context not a string": (_paragraph_mutation("context", 3), "'context' must be a string, got int"),
}


@pytest.mark.parametrize("case", list(PARAGRAPH_ERRORS))
def test_paragraph_errors_name_file_and_article(case: str, tmp_path: Path) -> None:
    mutate, expected_message = PARAGRAPH_ERRORS[case]
    document = _v2_document()
    mutate(document)
    path = _write(tmp_path, document)
    with pytest.raises(SquadFormatError) as raised:
        read_squad_json(path)
    assert expected_message in raised.value.message
    assert (raised.value.source, raised.value.article) == (str(path), ARTICLE)
    assert str(path) in str(raised.value) and ARTICLE in str(raised.value)


def test_context_longer_than_the_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, _v2_document())
    with pytest.raises(SquadFormatError) as raised:
        read_squad_json(path, max_context_chars=550)
    # Sky_(United_Kingdom) paragraph 0 (508 characters) passes; paragraph 1 (800) does not
    assert (
        raised.value.message
        == "paragraph #1: the context is 800 characters long, more than max_context_chars=550"
    )
    assert raised.value.article == "Sky_(United_Kingdom)"


def test_article_without_paragraphs(tmp_path: Path) -> None:
    document = _v2_document()
    del _target_article(document)["paragraphs"]
    path = _write(tmp_path, document)
    with pytest.raises(SquadFormatError) as raised:
        read_squad_json(path)
    assert raised.value.message == "the article has no 'paragraphs' list (got null)"
    assert (raised.value.source, raised.value.article, raised.value.question_id) == (str(path), ARTICLE, None)


def test_untitled_article_is_named_by_index(tmp_path: Path) -> None:
    document = _v2_document()
    del document["data"][2]["title"]
    document["data"][2]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] += 1
    with pytest.raises(SquadFormatError) as raised:
        read_squad_json(_write(tmp_path, document))
    assert raised.value.article == "#2"


def test_title_not_a_string(tmp_path: Path) -> None:
    document = _v2_document()
    document["data"][1]["title"] = 1973
    with pytest.raises(SquadFormatError, match=r"article '#1': 'title' must be a string, got int"):
        read_squad_json(_write(tmp_path, document))


# ---------------------------------------------------------------------------------------------------------
# File-level errors always raise, also with skip_invalid.


@pytest.mark.parametrize("skip_invalid", [False, True])
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "the file is empty"),
        ('{"version": "v2.0",\n "data": [}', "malformed JSON at line 2, column 11: Expecting value"),
        ("[1, 2]", "the top level must be a JSON object with a 'data' list, got list"),
        ('{"version": "v2.0"}', "the top-level object has no 'data' list (got null)"),
        ('{"version": "v2.0", "data": []}', "the file contains no questions"),
        ('{"version": "3.0", "data": []}', "unknown SQuAD version '3.0'"),
    ],
)
def test_file_level_errors(content: str, expected: str, skip_invalid: bool, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SquadFormatError) as raised:
        read_squad_json(path, skip_invalid=skip_invalid)
    assert str(raised.value).startswith(f"{path}: {expected}")


def test_missing_file_and_directory_and_non_utf8(tmp_path: Path) -> None:
    with pytest.raises(SquadFormatError, match="file not found") as raised:
        read_squad_json(tmp_path / "absent.json")
    assert raised.value.source == str(tmp_path / "absent.json")
    with pytest.raises(SquadFormatError, match="is a directory"):
        read_squad_json(tmp_path)
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"data": "café"}'.encode("latin-1"))
    with pytest.raises(SquadFormatError, match="not UTF-8 text"):
        read_squad_json(latin1)


# ---------------------------------------------------------------------------------------------------------
# skip_invalid


def test_skip_invalid_drops_bad_questions_and_records_why(tmp_path: Path) -> None:
    document = _v2_document()
    _target_question(document)["answers"][0]["answer_start"] += 1  # one bad question
    article = _target_article(document)
    duplicate = article["paragraphs"][1]["qas"][3]
    duplicate["id"] = QUESTION_ID  # a later duplicate of the (skipped) bad question: now the first valid one
    second_duplicate = document["data"][0]["paragraphs"][0]["qas"][0]["id"]
    document["data"][2]["paragraphs"][1]["qas"][4]["id"] = second_duplicate  # duplicate of a valid question
    broken_paragraph = document["data"][3]["paragraphs"][0]
    del broken_paragraph["context"]  # a whole paragraph of 10 questions
    path = _write(tmp_path, document)

    with pytest.raises(SquadFormatError):
        read_squad_json(path)
    loaded = read_squad_json(path, skip_invalid=True)

    assert len(loaded.examples) == 87 - 1 - 1 - 10
    assert loaded.num_skipped == 12
    reasons = {(record.article, record.question_id): record.reason for record in loaded.skipped}
    assert "is not at answer_start" in reasons[(ARTICLE, QUESTION_ID)]
    assert reasons[("Construction", second_duplicate)].startswith("duplicate question id")
    unreadable = [record for record in loaded.skipped if record.article == "University_of_Chicago"]
    assert [record.question_id for record in unreadable] == [qa["id"] for qa in broken_paragraph["qas"]]
    assert {record.reason for record in unreadable} == {"paragraph #0 has no 'context'"}
    assert all(record.source == str(path) for record in loaded.skipped)
    # the first valid question of a duplicated id is kept
    kept = {example.id: example for example in loaded.examples}
    assert kept[QUESTION_ID].question == duplicate["question"]
    assert kept[second_duplicate].title == "Sky_(United_Kingdom)"


def test_skip_invalid_with_nothing_left_still_raises(tmp_path: Path) -> None:
    document = {
        "version": "v2.0",
        "data": [{"title": "Only", "paragraphs": [{"context": "", "qas": [{"id": "a"}]}]}],
    }
    with pytest.raises(SquadFormatError, match=r"no valid questions \(1 skipped as invalid\)"):
        read_squad_json(_write(tmp_path, document), skip_invalid=True)


# ---------------------------------------------------------------------------------------------------------
# JSONL and hub records


def _jsonl_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in V2_JSONL.read_text(encoding="utf-8").splitlines()]


def _write_jsonl(tmp_path: Path, rows: list[Any]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def test_jsonl_fixture_gives_the_same_examples_as_the_official_file() -> None:
    loaded = read_jsonl(V2_JSONL)
    assert (len(loaded.examples), loaded.version, loaded.source) == (49, "jsonl", str(V2_JSONL))
    assert sum(example.is_impossible for example in loaded.examples) == 30
    assert loaded.examples == read_squad_json(V2_SLICE).examples[:49]


def test_jsonl_accepts_a_list_of_answer_objects_and_blank_lines(tmp_path: Path) -> None:
    rows = _jsonl_rows()[:3]
    for row in rows:
        answers = row["answers"]
        row["answers"] = [
            {"text": text, "answer_start": start}
            for text, start in zip(answers["text"], answers["answer_start"])
        ]
    path = tmp_path / "data.jsonl"
    path.write_text("\n\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    assert read_jsonl(path).examples == read_jsonl(V2_JSONL).examples[:3]


def test_jsonl_keeps_unicode_line_separators_inside_records(tmp_path: Path) -> None:
    row = _jsonl_rows()[0]
    row["context"] = "Sky\u2028plc\x85" + row["context"]
    row["answers"]["answer_start"] = [start + 8 for start in row["answers"]["answer_start"]]
    path = tmp_path / "data.jsonl"
    path.write_text("\ufeff" + json.dumps(row, ensure_ascii=False) + "\r\n", encoding="utf-8")
    (example,) = read_jsonl(path).examples
    assert example.context.startswith("Sky\u2028plc\x85") and example.answers[0] == Answer("BSkyB", 106)


def test_jsonl_errors_name_file_line_article_and_question(tmp_path: Path) -> None:
    rows = _jsonl_rows()
    rows[2]["answers"]["answer_start"][0] += 1
    path = _write_jsonl(tmp_path, rows)
    with pytest.raises(SquadFormatError) as raised:
        read_jsonl(path)
    assert (raised.value.source, raised.value.article, raised.value.question_id) == (
        f"{path}:3",
        "Sky_(United_Kingdom)",
        rows[2]["id"],
    )
    assert str(raised.value).startswith(
        f"{path}:3, article 'Sky_(United_Kingdom)', question '{rows[2]['id']}': "
    )

    loaded = read_jsonl(path, skip_invalid=True)
    assert (len(loaded.examples), loaded.num_skipped, loaded.skipped[0].source) == (48, 1, f"{path}:3")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda row: row["answers"]["answer_start"].append(3),
            "'answers' has 1 texts but 2 answer_start values",
        ),
        (lambda row: row.pop("context"), "the record has no 'context'"),
        (lambda row: row.update(title=["Sky"]), "'title' must be a string, got list"),
        (
            lambda row: row.update(is_impossible=True),
            "'is_impossible' is true but the question has 1 answer(s)",
        ),
    ],
)
def test_jsonl_record_errors(change: Callable[[dict[str, Any]], Any], expected: str, tmp_path: Path) -> None:
    rows = _jsonl_rows()[:4]
    rows[1]["answers"] = {
        "text": rows[1]["answers"]["text"][:1],
        "answer_start": rows[1]["answers"]["answer_start"][:1],
    }
    change(rows[1])
    path = _write_jsonl(tmp_path, rows)
    with pytest.raises(SquadFormatError) as raised:
        read_jsonl(path)
    assert expected in raised.value.message
    assert (raised.value.source, raised.value.question_id) == (f"{path}:2", rows[1]["id"])


def test_jsonl_malformed_line_and_duplicate_ids(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    lines = V2_JSONL.read_text(encoding="utf-8").splitlines()
    path.write_text(lines[0] + "\n" + lines[1][:-1] + "\n", encoding="utf-8")
    for skip_invalid in (False, True):
        with pytest.raises(SquadFormatError, match=r"malformed JSON at line 2, column \d+"):
            read_jsonl(path, skip_invalid=skip_invalid)
    path.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[0] + "\n", encoding="utf-8")
    with pytest.raises(SquadFormatError) as raised:
        read_jsonl(path)
    assert (raised.value.source, raised.value.message) == (
        f"{path}:3",
        f"duplicate question id (first seen in {path}:1)",
    )


def test_records_from_a_hub_dataset() -> None:
    datasets = pytest.importorskip("datasets")
    rows = _jsonl_rows()
    rows[5]["context"] = ""
    loaded = examples_from_records(
        datasets.Dataset.from_list(rows), "hub:squad_v2:validation", skip_invalid=True
    )
    expected = [example for example in read_jsonl(V2_JSONL).examples if example.id != rows[5]["id"]]
    assert loaded.examples == expected
    assert [(record.source, record.question_id, record.reason) for record in loaded.skipped] == [
        ("hub:squad_v2:validation, row 5", rows[5]["id"], "the context is empty")
    ]


def test_read_hub_dataset_and_load_squad_call_load_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name: str, split: str) -> Any:
        calls.append((name, split))
        return datasets.Dataset.from_list(_jsonl_rows())

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    loaded = load_squad("hub:squad_v2:train")
    assert (loaded.source, loaded.version, len(loaded.examples)) == ("hub:squad_v2:train", "squad_v2", 49)
    assert load_squad("hub:squad", split="train").source == "hub:squad:train"
    assert read_hub_dataset().source == "hub:squad_v2:validation"
    assert calls == [("squad_v2", "train"), ("squad", "train"), ("squad_v2", "validation")]


def test_read_hub_dataset_without_datasets_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'squad-qa-common\[hub\]'"):
        read_hub_dataset("squad_v2")


def test_load_squad_dispatches_on_the_source(tmp_path: Path) -> None:
    assert load_squad(V2_SLICE).version == "v2.0"
    assert load_squad(str(V1_SLICE)).version == "v1.1"
    assert load_squad(str(V2_JSONL)).version == "jsonl"
    with pytest.raises(ValueError, match="applies to hub sources only"):
        load_squad(V2_SLICE, split="train")
    with pytest.raises(ValueError, match="names split 'train' but split='validation'"):
        load_squad("hub:squad_v2:train", split="validation")
    with pytest.raises(ValueError, match="names no data set"):
        load_squad("hub:")


# ---------------------------------------------------------------------------------------------------------
# Writing back and splitting


def test_official_json_round_trip_reproduces_the_file(tmp_path: Path) -> None:
    loaded = read_squad_json(V2_SLICE)
    assert to_official_json(loaded.examples) == _v2_document()
    v1_loaded = read_squad_json(V1_SLICE)
    assert to_official_json(v1_loaded.examples, "v1.1") == json.loads(V1_SLICE.read_text(encoding="utf-8"))

    path = tmp_path / "out" / "round_trip.json"
    write_squad_json(loaded.examples, path)
    assert read_squad_json(path).examples == loaded.examples
    assert sorted(os.listdir(path.parent)) == ["round_trip.json"]  # no temporary file left behind

    jsonl_examples = read_jsonl(V2_JSONL).examples
    write_squad_json(jsonl_examples, path)
    assert read_squad_json(path).examples == jsonl_examples


def test_official_json_groups_consecutive_paragraphs_and_rejects_unanswerable_v1() -> None:
    context = "Paris is the capital of France."
    examples = [
        SquadExample("q1", "Capital?", context, (Answer("Paris", 0),), "France"),
        SquadExample("q2", "Country?", context, (Answer("France", 24),), "France"),
        SquadExample("q3", "King?", context, (), "France"),
        SquadExample("q4", "Other?", "Another paragraph.", (), "France"),
    ]
    document = to_official_json(examples)
    assert document["version"] == "v2.0"
    assert [[len(p["qas"]) for p in article["paragraphs"]] for article in document["data"]] == [[3, 1]]
    assert document["data"][0]["paragraphs"][0]["qas"][2] == {
        "id": "q3",
        "question": "King?",
        "answers": [],
        "is_impossible": True,
    }
    with pytest.raises(ValueError, match="question 'q3' has no answers"):
        to_official_json(examples, "v1.1")
    with pytest.raises(ValueError, match="unknown SQuAD version"):
        to_official_json(examples, "v3")


def test_split_by_article_is_deterministic_and_keeps_articles_whole() -> None:
    examples = read_squad_json(V2_SLICE).examples
    kept, heldout = split_by_article(examples, num_heldout_articles=2, seed=13)
    assert (kept, heldout) == split_by_article(copy.deepcopy(examples), num_heldout_articles=2, seed=13)
    kept_titles = {example.title for example in kept}
    heldout_titles = {example.title for example in heldout}
    assert len(heldout_titles) == 2 and len(kept_titles) == 2
    assert not kept_titles & heldout_titles
    assert len(kept) + len(heldout) == len(examples)
    # order within each part is the original order
    position = {example.id: index for index, example in enumerate(examples)}
    assert [position[example.id] for example in kept] == sorted(position[example.id] for example in kept)
    assert [position[example.id] for example in heldout] == sorted(
        position[example.id] for example in heldout
    )
    # different seeds pick different articles
    picks = {
        frozenset(example.title for example in split_by_article(examples, 2, seed)[1]) for seed in range(10)
    }
    assert len(picks) > 1
    assert split_by_article(examples, 0, seed=1) == (examples, [])


@pytest.mark.parametrize("num_heldout_articles", [4, 5, -1])
def test_split_by_article_must_leave_an_article(num_heldout_articles: int) -> None:
    examples = read_squad_json(V2_SLICE).examples
    with pytest.raises(ValueError, match=f"cannot hold out {num_heldout_articles} of 4 article"):
        split_by_article(examples, num_heldout_articles, seed=0)
