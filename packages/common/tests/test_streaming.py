"""Big files: JSONL streams record by record in bounded memory, the official JSON layout (parsed whole) is refused
over a configurable size, and streaming reads lines and bytes exactly as reading the whole text did."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qa_common.data.readers import (
    MAX_JSON_FILE_BYTES,
    SquadFormatError,
    iter_jsonl,
    max_json_file_bytes,
    read_jsonl,
    read_squad_json,
)

MIB = 1024 * 1024
CONTEXT = ("The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region "
           "in France. They were descended from Norse raiders and pirates from Denmark, Iceland and Norway. ") * 16
QUESTIONS_PER_PARAGRAPH = 5


def write_jsonl(path: Path, target_bytes: int) -> int:
    """Hub-style rows: each paragraph's context repeated on each of its questions, as `squad_v2` rows are."""
    count = 0
    with open(path, "w", encoding="utf-8") as file:
        while file.tell() < target_bytes:
            context = f"Paragraph {count // QUESTIONS_PER_PARAGRAPH}. {CONTEXT}"
            start = context.index("Normandy")
            file.write(json.dumps({"id": f"q{count}", "title": "Normans", "context": context,
                                   "question": "What region is named after the Normans?",
                                   "answers": {"text": ["Normandy"], "answer_start": [start]}}) + "\n")
            count += 1
    return count


# Peak RSS is the child's VmHWM: ru_maxrss would not do, since Linux carries it over from the parent across the
# fork and exec that start the child (a child of this pytest process would start with pytest's peak).
CHILD = """
import json, sys
from qa_common.data import readers
def status(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field)) * 1024
before = status("VmRSS:")
if sys.argv[1] == "iter":
    count = sum(1 for _ in readers.iter_jsonl(sys.argv[2]))
else:
    count = len(readers.read_jsonl(sys.argv[2]).examples)
print(json.dumps({"growth": status("VmHWM:") - before, "count": count}))
"""


def peak_growth(how: str, path: Path) -> tuple[int, int]:
    """(peak RSS growth in bytes, questions read) of reading ``path`` in a fresh Python."""
    process = subprocess.run([sys.executable, "-c", CHILD, how, str(path)], capture_output=True, text=True,
                             timeout=120)
    assert process.returncode == 0, process.stderr[-3000:]
    figures = json.loads(process.stdout)
    return figures["growth"], figures["count"]


@pytest.fixture(scope="module")
def big_jsonl(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("big") / "big.jsonl"
    return path, write_jsonl(path, 48 * MIB)


def test_iterating_a_big_jsonl_holds_far_less_than_the_file(big_jsonl):
    path, count = big_jsonl
    growth, read = peak_growth("iter", path)
    assert read == count
    # 48 MiB of text in ~15,000 records of 3.3 kB: what stays is the set of ids seen, a few hundred bytes a
    # question (under 3 MiB here); reading the whole text and splitting it into lines, as the reader did
    # before, grew by over 2 x the file.
    size = path.stat().st_size
    assert growth < 16 * MIB, f"peak RSS grew by {growth / MIB:.1f} MiB for a {size / MIB:.0f} MiB file"


def test_reading_a_big_jsonl_holds_the_examples_not_the_text(big_jsonl):
    path, count = big_jsonl
    growth, read = peak_growth("read", path)
    assert read == count
    # The questions of one paragraph share one context string: less than the file itself (5.3 x before).
    assert growth < path.stat().st_size, f"peak RSS grew by {growth / MIB:.1f} MiB"


def test_questions_of_one_paragraph_share_one_context_string(tmp_path):
    path = tmp_path / "data.jsonl"
    write_jsonl(path, 20_000)
    examples = read_jsonl(path).examples
    assert len(examples) > QUESTIONS_PER_PARAGRAPH
    assert examples[0].context is examples[QUESTIONS_PER_PARAGRAPH - 1].context
    assert examples[0].context is not examples[QUESTIONS_PER_PARAGRAPH].context
    assert list(iter_jsonl(path)) == examples


def test_lines_are_numbered_as_universal_newlines_number_them(tmp_path):
    row = {"id": "a", "question": "Who?", "context": "Rollo\u2028led them.",
           "answers": {"text": [], "answer_start": []}}
    path = tmp_path / "data.jsonl"
    # \r\n, a lone \r and \n all end a line; U+2028 inside a string does not. The bad record is on line 4.
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(row, ensure_ascii=False).encode() + b"\r\n\r\r\n{\"id\": 3}\n")
    with pytest.raises(SquadFormatError, match=r"data\.jsonl:4: the record: 'id' must be a string"):
        read_jsonl(path)
    (example,) = read_jsonl(path, skip_invalid=True).examples
    assert example.context == "Rollo\u2028led them."


def test_invalid_utf8_is_reported_at_its_offset_in_the_file(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\n\n" + b'{"id": "\xff"}\n')
    with pytest.raises(SquadFormatError, match=r"not UTF-8 text \(invalid start byte at byte 10\)"):
        read_jsonl(path)


def test_an_official_json_file_over_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    path.write_text(json.dumps({"version": "v2.0", "data": []}) + " " * 2000)
    assert max_json_file_bytes() == MAX_JSON_FILE_BYTES == 1024**3
    with pytest.raises(SquadFormatError, match=r"the file is 2,\d{3} bytes, more than the limit of 1,000 .*JSONL"):
        read_squad_json(path, max_file_bytes=1000)
    monkeypatch.setenv("SQUAD_QA_MAX_JSON_BYTES", "1000")
    with pytest.raises(SquadFormatError, match="SQUAD_QA_MAX_JSON_BYTES"):
        read_squad_json(path)
    monkeypatch.setenv("SQUAD_QA_MAX_JSON_BYTES", "lots")
    with pytest.raises(ValueError, match="SQUAD_QA_MAX_JSON_BYTES='lots'"):
        read_squad_json(path)
