"""Read, validate and write SQuAD data.

Three inputs become one list of `SquadExample`s: the official JSON layout (v1.1 and v2.0), flat JSONL
records in the Hugging Face `squad_v2` row layout, and hub data sets through `datasets`. Every problem is
reported with the file (or hub split), the article and the question id, so a bad record can be found.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qa_common.data.examples import Answer, SquadExample

MAX_CONTEXT_CHARS = 100_000
"""Default upper bound on the length of one context, in characters.

The longest context in the official SQuAD 2.0 data is under 4,000 characters; a much longer one is almost
always a conversion bug (a whole article pasted in as one paragraph), and it would silently turn into
hundreds of windows per question downstream.
"""

MAX_JSON_FILE_BYTES = 1024**3
"""Default upper bound on the size of an official-layout JSON file, in bytes (1 GiB).

`json` parses a whole document at once, so reading one peaks at about 6 x its size in memory (measured by
`scripts/reliability_streaming.py`: 5.55 x for 100 and 150 MiB files); the largest official file,
train-v2.0.json, is 42 MB. JSONL files stream record by record and have no such limit.
`SQUAD_QA_MAX_JSON_BYTES` overrides it.
"""
MAX_JSON_FILE_BYTES_VARIABLE = "SQUAD_QA_MAX_JSON_BYTES"


def max_json_file_bytes() -> int:
    """The official-layout size limit in force: `SQUAD_QA_MAX_JSON_BYTES` when set, else `MAX_JSON_FILE_BYTES`."""
    value = os.environ.get(MAX_JSON_FILE_BYTES_VARIABLE, "").strip()
    if not value:
        return MAX_JSON_FILE_BYTES
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise ValueError(f"{MAX_JSON_FILE_BYTES_VARIABLE}={value!r}: expected a whole number of bytes, at least 1")
    return limit

HUB_PREFIX = "hub:"
DEFAULT_HUB_SPLIT = "validation"

_SNIPPET_CHARS = 40


class SquadFormatError(ValueError):
    """Raised for invalid SQuAD input.

    The message names the file, the article (title or index) and the question id when they are known;
    they are also kept as the attributes `source`, `article` and `question_id`, and the bare description
    of the problem as `message`.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        article: str | None = None,
        question_id: str | None = None,
    ) -> None:
        self.message = message
        self.source = source
        self.article = article
        self.question_id = question_id
        super().__init__(self._describe())

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only fields: the default exception pickling would pass only the formatted message back
        return (_rebuild_format_error, (self.message, self.source, self.article, self.question_id))

    def _describe(self) -> str:
        where = []
        if self.source is not None:
            where.append(self.source)
        if self.article is not None:
            where.append(f"article {self.article!r}")
        if self.question_id is not None:
            where.append(f"question {self.question_id!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message


def _rebuild_format_error(
    message: str, source: str | None, article: str | None, question_id: str | None
) -> SquadFormatError:
    return SquadFormatError(message, source=source, article=article, question_id=question_id)


@dataclass
class SkippedRecord:
    """One question (or one unreadable article/paragraph) left out by a reader with `skip_invalid=True`."""

    source: str
    article: str | None
    question_id: str | None
    reason: str


@dataclass
class LoadedSquad:
    """The result of a reader.

    Attributes:
        examples: The valid questions, in file order.
        skipped: What was left out with `skip_invalid=True` and why (empty otherwise).
        source: The file path or hub source ("hub:NAME:SPLIT") read.
        version: "v1.1" or "v2.0" for the official layout, "jsonl" for JSONL, the data set name for the hub.
    """

    examples: list[SquadExample]
    skipped: list[SkippedRecord] = field(default_factory=list)
    source: str = ""
    version: str = ""

    @property
    def num_skipped(self) -> int:
        """How many records were skipped."""
        return len(self.skipped)


class _Invalid(Exception):
    """A problem found by a field check; the caller adds the location and turns it into SquadFormatError."""


class _Problems:
    """Raises the first problem, or with `skip_invalid` records every problem and lets reading go on."""

    def __init__(self, skip_invalid: bool) -> None:
        self.skip_invalid = skip_invalid
        self.skipped: list[SkippedRecord] = []

    def report(self, error: SquadFormatError, question_ids: Sequence[str | None] = ()) -> None:
        if not self.skip_invalid:
            raise error
        for question_id in question_ids or (error.question_id,):
            self.skipped.append(
                SkippedRecord(
                    source=error.source or "",
                    article=error.article,
                    question_id=question_id,
                    reason=error.message,
                )
            )


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _require_string(record: Mapping[str, Any], key: str, what: str) -> str:
    if key not in record:
        raise _Invalid(f"{what} has no {key!r}")
    value = record[key]
    if not isinstance(value, str):
        raise _Invalid(f"{what}: {key!r} must be a string, got {_type_name(value)}")
    return value


def _check_context(context: Any, max_context_chars: int) -> str:
    if not isinstance(context, str):
        raise _Invalid(f"'context' must be a string, got {_type_name(context)}")
    if not context.strip():
        raise _Invalid("the context is empty")
    if len(context) > max_context_chars:
        raise _Invalid(
            f"the context is {len(context):,} characters long, "
            f"more than max_context_chars={max_context_chars:,}"
        )
    return context


def _parse_answer(raw: Any, position: int, context: str) -> Answer:
    if not isinstance(raw, Mapping):
        raise _Invalid(f"answer #{position} must be an object with 'text' and 'answer_start'")
    text = _require_string(raw, "text", f"answer #{position}")
    if "answer_start" not in raw:
        raise _Invalid(f"answer #{position} has no 'answer_start'")
    start = raw["answer_start"]
    # bool is a subclass of int, but true/false as an offset is always a data bug
    if not isinstance(start, int) or isinstance(start, bool):
        raise _Invalid(f"answer #{position}: 'answer_start' must be an integer, got {_type_name(start)}")
    if not text:
        raise _Invalid(f"answer #{position} has empty text")
    if start < 0 or context[start : start + len(text)] != text:
        found = context[max(start, 0) : max(start, 0) + min(len(text), _SNIPPET_CHARS)]
        elsewhere = context.find(text)
        hint = (
            f"; the text occurs at offset {elsewhere}"
            if elsewhere >= 0
            else "; the text is not in the context"
        )
        raise _Invalid(
            f"answer #{position} {text[:_SNIPPET_CHARS]!r} is not at answer_start {start} "
            f"(the context there reads {found!r}){hint}"
        )
    return Answer(text=text, start=start)


def _parse_answers(raw_answers: Any, context: str) -> tuple[Answer, ...]:
    if not isinstance(raw_answers, list):
        raise _Invalid(f"'answers' must be a list, got {_type_name(raw_answers)}")
    return tuple(_parse_answer(raw, position, context) for position, raw in enumerate(raw_answers))


def _check_answerability(record: Mapping[str, Any], answers: tuple[Answer, ...], version: str) -> None:
    if "is_impossible" in record:
        is_impossible = record["is_impossible"]
        if not isinstance(is_impossible, bool):
            raise _Invalid(f"'is_impossible' must be true or false, got {_type_name(is_impossible)}")
        if is_impossible and answers:
            raise _Invalid(
                f"'is_impossible' is true but the question has {len(answers)} answer(s) "
                "(SQuAD 2.0 keeps those under 'plausible_answers')"
            )
        if not is_impossible and not answers:
            raise _Invalid("'is_impossible' is false but the question has no answers")
    if version == "v1.1" and not answers:
        raise _Invalid("the question has no answers; every SQuAD v1.1 question needs at least one")


def _no_questions(problems: _Problems) -> str:
    if problems.skipped:
        return f"no valid questions ({len(problems.skipped)} skipped as invalid)"
    return "no questions"


def _record_id(record: Any) -> str | None:
    """The question id when it can be read, to name the question in an error about the rest of it."""
    if isinstance(record, Mapping) and isinstance(record.get("id"), str):
        return record["id"]
    return None


class _IdRegistry:
    """Question ids seen so far, to reject duplicates across a whole file."""

    def __init__(self) -> None:
        self._where: dict[str, str] = {}

    def check(self, question_id: str) -> None:
        if question_id in self._where:
            raise _Invalid(f"duplicate question id (first seen in {self._where[question_id]})")

    def add(self, question_id: str, where: str) -> None:
        self._where[question_id] = where


# ---------------------------------------------------------------------------------------------------------
# Official JSON layout


def _file_error(error: OSError, source: str) -> SquadFormatError:
    if isinstance(error, FileNotFoundError):
        return SquadFormatError("file not found", source=source)
    if isinstance(error, IsADirectoryError):
        return SquadFormatError("is a directory, not a file", source=source)
    return SquadFormatError(f"cannot read the file: {error.strerror or error}", source=source)


def _not_utf8(error: UnicodeDecodeError, offset: int, source: str) -> SquadFormatError:
    return SquadFormatError(f"not UTF-8 text ({error.reason} at byte {offset + error.start})", source=source)


def _read_text(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise _not_utf8(error, 0, source) from error
    except OSError as error:
        raise _file_error(error, source) from error


def _check_json_file_size(path: Path, source: str, max_file_bytes: int | None) -> None:
    limit = max_json_file_bytes() if max_file_bytes is None else max_file_bytes
    try:
        size = path.stat().st_size
    except OSError as error:
        raise _file_error(error, source) from error
    if size > limit:
        raise SquadFormatError(
            f"the file is {size:,} bytes, more than the limit of {limit:,} for the official JSON layout, which "
            f"is read whole (peak memory about 6 x the file); convert it to JSONL, which streams, or raise "
            f"{MAX_JSON_FILE_BYTES_VARIABLE}",
            source=source,
        )


def _parse_json(text: str, source: str) -> Any:
    if not text.strip():
        raise SquadFormatError("the file is empty", source=source)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SquadFormatError(
            f"malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}", source=source
        ) from error


def _iter_question_records(data: list[Any]) -> Iterator[Mapping[str, Any]]:
    for article in data:
        paragraphs = article.get("paragraphs") if isinstance(article, Mapping) else None
        for paragraph in paragraphs if isinstance(paragraphs, list) else ():
            qas = paragraph.get("qas") if isinstance(paragraph, Mapping) else None
            for qa in qas if isinstance(qas, list) else ():
                if isinstance(qa, Mapping):
                    yield qa


def _detect_version(document: Mapping[str, Any], data: list[Any], source: str) -> str:
    declared = document.get("version")
    if declared is None:
        has_is_impossible = any("is_impossible" in qa for qa in _iter_question_records(data))
        return "v2.0" if has_is_impossible else "v1.1"
    major = str(declared).strip().lower().removeprefix("v").split(".")[0]
    if major == "2":
        return "v2.0"
    if major == "1":
        return "v1.1"
    raise SquadFormatError(f"unknown SQuAD version {declared!r}; expected 'v2.0' or '1.1'", source=source)


def read_squad_json(
    path: str | os.PathLike[str],
    *,
    skip_invalid: bool = False,
    max_context_chars: int = MAX_CONTEXT_CHARS,
    max_file_bytes: int | None = None,
) -> LoadedSquad:
    """Read a file in the official SQuAD JSON layout (v1.1 or v2.0) and validate every question.

    The layout is `{"version", "data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question",
    "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}`. The version comes from the top-level
    "version" field ("v2.0", "1.1", ...) or, without one, from whether any question has "is_impossible".
    `plausible_answers` of unanswerable v2.0 questions are ignored.

    Args:
        path: The JSON file.
        skip_invalid: Leave out invalid questions (or a whole invalid article or paragraph) and list them in
            `LoadedSquad.skipped` instead of raising; the first of two questions with the same id is kept.
            Problems with the file as a whole raise regardless.
        max_context_chars: Longest context accepted, in characters.
        max_file_bytes: Largest file accepted, in bytes; None takes `max_json_file_bytes()` (1 GiB unless
            `SQUAD_QA_MAX_JSON_BYTES` says otherwise). The whole document is parsed at once, so reading
            peaks at about 6 x the file size in memory; JSONL streams instead.

    Returns:
        The examples in file order, with the skipped records, the source path and "v1.1" or "v2.0".

    Raises:
        SquadFormatError: The file is missing, unreadable, larger than `max_file_bytes`, empty or malformed
            JSON, has no "data" list or no valid questions, or (without `skip_invalid`) any question is
            invalid: missing or mistyped fields, an empty or too long context, a duplicate id, an answer whose
            text is not at its `answer_start`, answers on an `is_impossible` question, or a v1.1 question
            without answers.
    """
    source = os.fspath(path)
    _check_json_file_size(Path(path), source, max_file_bytes)
    document = _parse_json(_read_text(Path(path), source), source)
    if not isinstance(document, Mapping):
        raise SquadFormatError(
            f"the top level must be a JSON object with a 'data' list, got {_type_name(document)}",
            source=source,
        )
    data = document.get("data")
    if not isinstance(data, list):
        raise SquadFormatError(
            f"the top-level object has no 'data' list (got {_type_name(data)})", source=source
        )
    version = _detect_version(document, data, source)
    problems = _Problems(skip_invalid)
    seen_ids = _IdRegistry()
    examples: list[SquadExample] = []
    for article_index, article in enumerate(data):
        examples.extend(
            _read_article(article, article_index, source, version, max_context_chars, problems, seen_ids)
        )
    if not examples:
        raise SquadFormatError(f"the file contains {_no_questions(problems)}", source=source)
    return LoadedSquad(examples=examples, skipped=problems.skipped, source=source, version=version)


def _paragraph_question_ids(paragraph: Any) -> list[str | None]:
    qas = paragraph.get("qas") if isinstance(paragraph, Mapping) else None
    return [_record_id(qa) for qa in qas] if isinstance(qas, list) and qas else [None]


def _read_article(
    article: Any,
    article_index: int,
    source: str,
    version: str,
    max_context_chars: int,
    problems: _Problems,
    seen_ids: _IdRegistry,
) -> list[SquadExample]:
    label = f"#{article_index}"
    if not isinstance(article, Mapping):
        problems.report(
            SquadFormatError(f"must be an object, got {_type_name(article)}", source=source, article=label)
        )
        return []
    title = article.get("title", "")
    if not isinstance(title, str):
        problems.report(
            SquadFormatError(
                f"'title' must be a string, got {_type_name(title)}", source=source, article=label
            )
        )
        return []
    label = title or label
    paragraphs = article.get("paragraphs")
    if not isinstance(paragraphs, list):
        problems.report(
            SquadFormatError(
                f"the article has no 'paragraphs' list (got {_type_name(paragraphs)})",
                source=source,
                article=label,
            )
        )
        return []
    examples = []
    for paragraph_index, paragraph in enumerate(paragraphs):
        try:
            context, qas = _check_paragraph(paragraph, paragraph_index, max_context_chars)
        except _Invalid as problem:
            problems.report(
                SquadFormatError(str(problem), source=source, article=label),
                question_ids=_paragraph_question_ids(paragraph),
            )
            continue
        for qa_index, qa in enumerate(qas):
            question_id = _record_id(qa)
            try:
                example = _parse_official_question(
                    qa, qa_index, paragraph_index, context, title, version, seen_ids
                )
            except _Invalid as problem:
                problems.report(
                    SquadFormatError(str(problem), source=source, article=label, question_id=question_id)
                )
                continue
            seen_ids.add(example.id, f"article {label!r}")
            examples.append(example)
    return examples


def _check_paragraph(paragraph: Any, paragraph_index: int, max_context_chars: int) -> tuple[str, list[Any]]:
    what = f"paragraph #{paragraph_index}"
    if not isinstance(paragraph, Mapping):
        raise _Invalid(f"{what} must be an object, got {_type_name(paragraph)}")
    if "context" not in paragraph:
        raise _Invalid(f"{what} has no 'context'")
    if "qas" not in paragraph:
        raise _Invalid(f"{what} has no 'qas'")
    qas = paragraph["qas"]
    if not isinstance(qas, list):
        raise _Invalid(f"{what}: 'qas' must be a list, got {_type_name(qas)}")
    try:
        context = _check_context(paragraph["context"], max_context_chars)
    except _Invalid as problem:
        raise _Invalid(f"{what}: {problem}") from None
    return context, qas


def _parse_official_question(
    qa: Any,
    qa_index: int,
    paragraph_index: int,
    context: str,
    title: str,
    version: str,
    seen_ids: _IdRegistry,
) -> SquadExample:
    what = f"question #{qa_index} of paragraph #{paragraph_index}"
    if not isinstance(qa, Mapping):
        raise _Invalid(f"{what} must be an object, got {_type_name(qa)}")
    question_id = _require_string(qa, "id", what)
    if not question_id:
        raise _Invalid(f"{what} has an empty 'id'")
    seen_ids.check(question_id)
    question = _require_string(qa, "question", what)
    if not question.strip():
        raise _Invalid(f"{what} has an empty 'question'")
    if "answers" not in qa:
        raise _Invalid(f"{what} has no 'answers' list")
    answers = _parse_answers(qa["answers"], context)
    _check_answerability(qa, answers, version)
    return SquadExample(id=question_id, question=question, context=context, answers=answers, title=title)


# ---------------------------------------------------------------------------------------------------------
# Flat records: JSONL files and hub data sets


def _record_answers(raw_answers: Any) -> Any:
    """Turn the hub layout {"text": [...], "answer_start": [...]} into a list of {"text", "answer_start"}."""
    if not isinstance(raw_answers, Mapping):
        return raw_answers
    texts, starts = raw_answers.get("text"), raw_answers.get("answer_start")
    if not isinstance(texts, list) or not isinstance(starts, list):
        raise _Invalid("'answers' must hold a 'text' list and an 'answer_start' list")
    if len(texts) != len(starts):
        raise _Invalid(f"'answers' has {len(texts)} texts but {len(starts)} answer_start values")
    return [{"text": text, "answer_start": start} for text, start in zip(texts, starts)]


def _parse_record(
    record: Any, max_context_chars: int, seen_ids: _IdRegistry, previous_context: str | None = None
) -> SquadExample:
    """One flat record as an example; a context equal to ``previous_context`` becomes that same string object, so
    the questions of one paragraph (consecutive rows repeating its context) hold the context once in memory."""
    if not isinstance(record, Mapping):
        raise _Invalid(f"the record must be an object, got {_type_name(record)}")
    question_id = _require_string(record, "id", "the record")
    if not question_id:
        raise _Invalid("the record has an empty 'id'")
    seen_ids.check(question_id)
    question = _require_string(record, "question", "the record")
    if not question.strip():
        raise _Invalid("the record has an empty 'question'")
    if "context" not in record:
        raise _Invalid("the record has no 'context'")
    context = _check_context(record["context"], max_context_chars)
    if context == previous_context:
        context = previous_context
    title = record.get("title")
    if title is None:
        title = ""
    if not isinstance(title, str):
        raise _Invalid(f"'title' must be a string, got {_type_name(title)}")
    if "answers" not in record:
        raise _Invalid("the record has no 'answers'")
    answers = _parse_answers(_record_answers(record["answers"]), context)
    _check_answerability(record, answers, "records")
    return SquadExample(id=question_id, question=question, context=context, answers=answers, title=title)


def _iter_examples(
    located_records: Iterable[tuple[str, Any]], *, problems: _Problems, max_context_chars: int
) -> Iterator[SquadExample]:
    seen_ids = _IdRegistry()
    previous_context = None
    for location, record in located_records:
        try:
            example = _parse_record(record, max_context_chars, seen_ids, previous_context)
        except _Invalid as problem:
            title = record.get("title") if isinstance(record, Mapping) else None
            problems.report(
                SquadFormatError(
                    str(problem),
                    source=location,
                    article=title if isinstance(title, str) and title else None,
                    question_id=_record_id(record),
                )
            )
            continue
        seen_ids.add(example.id, location)
        previous_context = example.context
        yield example


def _examples_from_located_records(
    located_records: Iterable[tuple[str, Any]],
    *,
    source: str,
    version: str,
    skip_invalid: bool,
    max_context_chars: int,
) -> LoadedSquad:
    problems = _Problems(skip_invalid)
    examples = list(_iter_examples(located_records, problems=problems, max_context_chars=max_context_chars))
    if not examples:
        raise SquadFormatError(f"contains {_no_questions(problems)}", source=source)
    return LoadedSquad(examples=examples, skipped=problems.skipped, source=source, version=version)


def examples_from_records(
    records: Iterable[Mapping[str, Any]],
    source: str,
    *,
    version: str = "records",
    skip_invalid: bool = False,
    max_context_chars: int = MAX_CONTEXT_CHARS,
) -> LoadedSquad:
    """Validate flat SQuAD records (the Hugging Face `squad_v2` row layout) into examples.

    Each record is `{"id", "question", "context", "answers", "title"?}` where "answers" is either
    `{"text": [...], "answer_start": [...]}` or `[{"text", "answer_start"}, ...]`; no answers means the
    question is unanswerable. An optional "is_impossible" is checked against the answers. Errors name the
    record as "SOURCE, row N" (N counted from 0, as `dataset[N]`).

    Args:
        records: The records, e.g. a `datasets.Dataset` or a list of dicts.
        source: What the records came from, for messages and `LoadedSquad.source`.
        version: Stored as `LoadedSquad.version`.
        skip_invalid: Leave out invalid records (keeping the first of duplicate ids) and list them in
            `LoadedSquad.skipped` instead of raising.
        max_context_chars: Longest context accepted, in characters.

    Raises:
        SquadFormatError: A record is invalid (without `skip_invalid`) or no valid record is left.
    """
    return _examples_from_located_records(
        ((f"{source}, row {index}", record) for index, record in enumerate(records)),
        source=source,
        version=version,
        skip_invalid=skip_invalid,
        max_context_chars=max_context_chars,
    )


def _jsonl_records(path: Path, source: str) -> Iterator[tuple[str, Any]]:
    """The records of a JSONL file one at a time, holding one line in memory.

    Lines are numbered as `Path.read_text` splits them (universal newlines: LF, CR LF or a lone CR ends a line;
    a U+2028 or U+0085 inside a string does not). The file is read in binary and decoded line by line, so an
    invalid UTF-8 byte is reported at its offset in the file.
    """
    try:
        file = open(path, "rb")  # closed in the finally below, after the last record
    except OSError as error:
        raise _file_error(error, source) from error
    try:
        line_number, offset, seen_text = 0, 0, False
        for raw_line in file:
            line_offset, offset = offset, offset + len(raw_line)
            if line_offset == 0 and raw_line.startswith(b"\xef\xbb\xbf"):
                raw_line, line_offset = raw_line[3:], 3
            body = raw_line.removesuffix(b"\n").removesuffix(b"\r") if raw_line.endswith(b"\n") else raw_line
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as error:
                raise _not_utf8(error, line_offset, source) from error
            for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
                line_number += 1
                if not line.strip():
                    continue
                seen_text = True
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise SquadFormatError(
                        f"malformed JSON at line {line_number}, column {error.colno}: {error.msg}", source=source
                    ) from error
                yield f"{source}:{line_number}", record
    except OSError as error:
        raise _file_error(error, source) from error
    finally:
        file.close()
    if not seen_text:
        raise SquadFormatError("the file is empty", source=source)


def read_jsonl(
    path: str | os.PathLike[str], *, skip_invalid: bool = False, max_context_chars: int = MAX_CONTEXT_CHARS
) -> LoadedSquad:
    """Read SQuAD questions from a JSON Lines file, one flat record per line.

    Records have the layout of `examples_from_records` (the Hugging Face `squad_v2` rows); blank lines are
    ignored. Errors name the record as "PATH:LINE". The file is read one line at a time, and consecutive
    questions of one paragraph share one context string, so memory holds the examples themselves, not the
    file's text (`iter_jsonl` does not hold the examples either).

    Args:
        path: The .jsonl file.
        skip_invalid: Leave out invalid records and list them in `LoadedSquad.skipped`; a line that is not
            JSON at all still raises.
        max_context_chars: Longest context accepted, in characters.

    Returns:
        The examples in file order, with version "jsonl".

    Raises:
        SquadFormatError: The file is missing, unreadable, empty or has a malformed line, a record is
            invalid (without `skip_invalid`) or no valid record is left.
    """
    source = os.fspath(path)
    return _examples_from_located_records(
        _jsonl_records(Path(path), source),
        source=source,
        version="jsonl",
        skip_invalid=skip_invalid,
        max_context_chars=max_context_chars,
    )


def iter_jsonl(
    path: str | os.PathLike[str], *, max_context_chars: int = MAX_CONTEXT_CHARS
) -> Iterator[SquadExample]:
    """Yield the questions of a JSON Lines file one at a time, reading one line at a time.

    The validation of `read_jsonl` (which collects these examples into a list), in bounded memory: what is held
    besides the current record is the set of question ids seen so far (to reject duplicates), so a file of any
    size can be checked or converted. `scripts/reliability_streaming.py` measures it.

    Raises:
        SquadFormatError: As `read_jsonl` without `skip_invalid`, at the first problem; examples before it
            have already been yielded.
    """
    source = os.fspath(path)
    problems = _Problems(skip_invalid=False)
    found = False
    for example in _iter_examples(_jsonl_records(Path(path), source), problems=problems,
                                  max_context_chars=max_context_chars):
        found = True
        yield example
    if not found:
        raise SquadFormatError(f"contains {_no_questions(problems)}", source=source)


def read_hub_dataset(
    name: str = "squad_v2",
    split: str = "validation",
    *,
    skip_invalid: bool = False,
    max_context_chars: int = MAX_CONTEXT_CHARS,
) -> LoadedSquad:
    """Load a SQuAD-layout data set from the Hugging Face hub with `datasets.load_dataset(name, split=split)`.

    Needs the optional `datasets` dependency (`pip install 'squad-qa-common[hub]'`). The rows are validated
    like JSONL records (see `examples_from_records`).

    Example: `read_hub_dataset("squad_v2", "validation")` gives the 11,873 official dev questions.

    Returns:
        The examples in row order, with source "hub:NAME:SPLIT" and version NAME.

    Raises:
        ImportError: `datasets` is not installed.
        SquadFormatError: A row is invalid (without `skip_invalid`) or no valid row is left.
    """
    try:
        from datasets import load_dataset
    except ImportError as error:
        raise ImportError(
            "reading a hub data set needs the `datasets` package: pip install 'squad-qa-common[hub]'"
        ) from error
    rows = load_dataset(name, split=split)
    return examples_from_records(
        rows,
        f"hub:{name}:{split}",
        version=name,
        skip_invalid=skip_invalid,
        max_context_chars=max_context_chars,
    )


def load_squad(
    source: str | os.PathLike[str],
    *,
    split: str | None = None,
    skip_invalid: bool = False,
    max_context_chars: int = MAX_CONTEXT_CHARS,
) -> LoadedSquad:
    """Load SQuAD questions from a file or the hub, choosing the reader from `source`.

    - "hub:NAME" or "hub:NAME:SPLIT" (e.g. "hub:squad_v2", "hub:squad_v2:train", "hub:squad"): the hub
      data set, split from the source, else `split`, else "validation".
    - a path ending in ".jsonl": `read_jsonl`.
    - any other path: `read_squad_json` (official layout).

    Raises:
        ValueError: `split` is given for a file, or differs from the split named in the hub source.
        SquadFormatError, ImportError: As raised by the chosen reader.
    """
    text = os.fspath(source)
    if text.startswith(HUB_PREFIX):
        name, _, source_split = text[len(HUB_PREFIX) :].partition(":")
        if not name:
            raise ValueError(f"hub source {text!r} names no data set; write e.g. 'hub:squad_v2:validation'")
        if source_split and split is not None and split != source_split:
            raise ValueError(
                f"hub source {text!r} names split {source_split!r} but split={split!r} was given"
            )
        return read_hub_dataset(
            name,
            source_split or split or DEFAULT_HUB_SPLIT,
            skip_invalid=skip_invalid,
            max_context_chars=max_context_chars,
        )
    if split is not None:
        raise ValueError(f"split={split!r} applies to hub sources only, not to the file {text!r}")
    if text.endswith(".jsonl"):
        return read_jsonl(text, skip_invalid=skip_invalid, max_context_chars=max_context_chars)
    return read_squad_json(text, skip_invalid=skip_invalid, max_context_chars=max_context_chars)


# ---------------------------------------------------------------------------------------------------------
# Writing and splitting


def _official_version_label(version: str) -> str:
    labels = {"v2.0": "v2.0", "2.0": "v2.0", "v1.1": "1.1", "1.1": "1.1"}
    if version not in labels:
        raise ValueError(f"unknown SQuAD version {version!r}; expected 'v2.0' or 'v1.1'")
    return labels[version]


def to_official_json(examples: Iterable[SquadExample], version: str = "v2.0") -> dict[str, Any]:
    """Build the official SQuAD JSON document for `examples`.

    Consecutive examples with the same title form one article, and consecutive examples of one article with
    the same context one paragraph, so examples read from an official file come back in its shape.

    Args:
        examples: The questions, in the order to write them.
        version: "v2.0" (every question gets "is_impossible") or "v1.1" (written as "1.1", without
            "is_impossible", as in the official v1.1 files).

    Raises:
        ValueError: Unknown version, or an unanswerable question for v1.1.
    """
    label = _official_version_label(version)
    articles: list[dict[str, Any]] = []
    for example in examples:
        if not articles or articles[-1]["title"] != example.title:
            articles.append({"title": example.title, "paragraphs": []})
        paragraphs = articles[-1]["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != example.context:
            paragraphs.append({"context": example.context, "qas": []})
        qa: dict[str, Any] = {
            "id": example.id,
            "question": example.question,
            "answers": [{"text": answer.text, "answer_start": answer.start} for answer in example.answers],
        }
        if label == "v2.0":
            qa["is_impossible"] = example.is_impossible
        elif example.is_impossible:
            raise ValueError(f"question {example.id!r} has no answers; SQuAD v1.1 cannot hold it")
        paragraphs[-1]["qas"].append(qa)
    return {"version": label, "data": articles}


def write_squad_json(
    examples: Iterable[SquadExample], path: str | os.PathLike[str], version: str = "v2.0"
) -> None:
    """Write `examples` as an official SQuAD JSON file (see `to_official_json`).

    The file is written to a temporary file next to `path` and renamed over it, so a reader never sees a
    half-written file and an interrupted write leaves the old file in place. Missing parent folders are
    created.
    """
    document = to_official_json(examples, version)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    file_descriptor, temporary_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(file_descriptor, "w", encoding="utf-8") as file:
            json.dump(document, file, ensure_ascii=False)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary_name, target)
    except BaseException:
        Path(temporary_name).unlink(missing_ok=True)
        raise


def split_by_article(
    examples: Sequence[SquadExample], num_heldout_articles: int, seed: int
) -> tuple[list[SquadExample], list[SquadExample]]:
    """Split examples into a kept part and a held-out part of whole articles.

    Splitting by article (title) keeps every context on one side, so the held-out score is not inflated by
    paragraphs seen in training. Examples without a title count as one article "".

    Args:
        examples: The questions.
        num_heldout_articles: How many articles to hold out; at least one article must remain.
        seed: Seed of the `random.Random` that picks the held-out articles; the same examples and seed
            always give the same split.

    Returns:
        (kept, heldout), each in the original order.

    Raises:
        ValueError: `num_heldout_articles` is negative or not smaller than the number of articles.
    """
    titles = list(dict.fromkeys(example.title for example in examples))
    if not 0 <= num_heldout_articles < len(titles):
        raise ValueError(
            f"cannot hold out {num_heldout_articles} of {len(titles)} article(s): "
            "the number must be at least 0 and leave at least one article"
        )
    heldout_titles = set(random.Random(seed).sample(titles, num_heldout_articles))
    kept = [example for example in examples if example.title not in heldout_titles]
    heldout = [example for example in examples if example.title in heldout_titles]
    return kept, heldout
