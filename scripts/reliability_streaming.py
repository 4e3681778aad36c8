"""Measure what the SQuAD readers hold in memory for big files: peak RSS against file size.

    python scripts/reliability_streaming.py [--jsonl-mb 300] [--json-mb 150] [--dir DIR]

Writes a JSONL file (Hugging Face `squad_v2` rows) and an official-layout JSON file of about the given sizes,
made of the shipped sample questions copied under new ids, then reads each in a fresh child process and
prints the child's peak RSS growth (VmHWM after reading minus RSS before) next to the file size. Part of
`make reliability`; `packages/common/tests/test_streaming.py` checks the JSONL bound on a smaller file in CI.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "train-v2.0-sample.json"
MIB = 1024 * 1024


def _sample_articles() -> list[dict]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))["data"]


def write_big_jsonl(path: Path, target_bytes: int) -> int:
    """Write flat records (one question a line, its paragraph's context repeated on each, as the hub rows
    are) until the file holds at least ``target_bytes``; return the number of records."""
    articles = _sample_articles()
    count, written, copy = 0, 0, 0
    with open(path, "w", encoding="utf-8") as file:
        while written < target_bytes:
            for article in articles:
                for paragraph in article["paragraphs"]:
                    for qa in paragraph["qas"]:
                        row = {"id": f"{qa['id']}-{copy}", "title": f"{article['title']} {copy}",
                               "context": paragraph["context"], "question": qa["question"],
                               "answers": {"text": [answer["text"] for answer in qa["answers"]],
                                           "answer_start": [answer["answer_start"] for answer in qa["answers"]]}}
                        line = json.dumps(row, ensure_ascii=False) + "\n"
                        written += file.write(line)
                        count += 1
            copy += 1
    return count


def write_big_json(path: Path, target_bytes: int) -> int:
    """Write an official SQuAD v2.0 document of at least ``target_bytes`` (articles copied under new titles
    and ids); return the number of questions."""
    articles = _sample_articles()
    count, written, copy = 0, 0, 0
    with open(path, "w", encoding="utf-8") as file:
        written += file.write('{"version": "v2.0", "data": [')
        while written < target_bytes:
            for article in articles:
                paragraphs = [{"context": paragraph["context"],
                               "qas": [{**qa, "id": f"{qa['id']}-{copy}"} for qa in paragraph["qas"]]}
                              for paragraph in article["paragraphs"]]
                count += sum(len(paragraph["qas"]) for paragraph in paragraphs)
                separator = "" if written <= len('{"version": "v2.0", "data": [') else ", "
                written += file.write(separator + json.dumps({"title": f"{article['title']} {copy}",
                                                              "paragraphs": paragraphs}, ensure_ascii=False))
            copy += 1
        file.write("]}")
    return count


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def current_rss_bytes() -> int:
    return _status_bytes("VmRSS")


def peak_rss_bytes() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the parent across the fork
    and exec that start a child, so a child would report at least its parent's peak."""
    return _status_bytes("VmHWM")


def _child(how: str, path: str) -> None:
    """Read ``path`` the way ``how`` says and print one JSON line: RSS before, peak after, questions read."""
    from qa_common.data import readers

    before = current_rss_bytes()
    started = time.perf_counter()
    if how == "iter_jsonl":
        questions = sum(1 for _ in readers.iter_jsonl(path))
    elif how == "read_jsonl":
        questions = len(readers.read_jsonl(path).examples)
    elif how == "read_squad_json":
        questions = len(readers.read_squad_json(path, max_file_bytes=None).examples)
    else:
        raise SystemExit(f"unknown reader {how}")
    print(json.dumps({"rss_before": before, "peak_rss": peak_rss_bytes(), "questions": questions,
                      "seconds": time.perf_counter() - started}))


def measure(how: str, path: Path) -> dict:
    """Read ``path`` with reader ``how`` in a fresh Python; its figures plus the file size and the growth."""
    process = subprocess.run([sys.executable, __file__, "--child", how, str(path)], capture_output=True,
                             text=True, check=False)
    if process.returncode != 0:
        raise RuntimeError(f"reading {path} with {how} failed:\n{process.stderr[-3000:]}")
    figures = json.loads(process.stdout.strip().splitlines()[-1])
    figures["file_bytes"] = path.stat().st_size
    figures["growth"] = max(figures["peak_rss"] - figures["rss_before"], 0)
    figures["reader"] = how
    return figures


def describe(figures: dict) -> str:
    size, growth = figures["file_bytes"] / MIB, figures["growth"] / MIB
    return (f"{figures['reader']:<16} {size:8.1f} MiB file, {figures['questions']:>9,} questions, "
            f"{figures['seconds']:6.1f} s: peak RSS growth {growth:8.1f} MiB = {growth / size:5.2f} x the file")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jsonl-mb", type=float, default=300.0, help="size of the JSONL file, MiB")
    parser.add_argument("--json-mb", type=float, default=150.0, help="size of the official-layout JSON file, MiB")
    parser.add_argument("--dir", help="where to write the files (default: a temporary folder, removed after)")
    parser.add_argument("--child", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        jsonl, document = Path(scratch) / "big.jsonl", Path(scratch) / "big.json"
        write_big_jsonl(jsonl, int(args.jsonl_mb * MIB))
        write_big_json(document, int(args.json_mb * MIB))
        print("Peak memory of the SQuAD readers (each in a fresh process):")
        for how, path in (("iter_jsonl", jsonl), ("read_jsonl", jsonl), ("read_squad_json", document)):
            print("  " + describe(measure(how, path)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
