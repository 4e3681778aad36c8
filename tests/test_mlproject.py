"""MLproject: every entry point's parameters reach its command, and its command names only declared ones."""

import re
from pathlib import Path

import yaml

MLPROJECT = Path(__file__).resolve().parents[1] / "MLproject"


def test_every_parameter_is_used_and_every_placeholder_declared():
    entry_points = yaml.safe_load(MLPROJECT.read_text())["entry_points"]
    assert {"bert_qa", "lstm_qa", "t5_qa", "mamba_qa"} <= set(entry_points)
    for name, entry in entry_points.items():
        declared = set(entry.get("parameters", {}))
        used = set(re.findall(r"\{(\w+)\}", entry["command"]))
        assert declared == used, (name, "unused:", declared - used, "undeclared:", used - declared)


def test_every_entry_point_of_an_onnx_exporting_architecture_can_turn_the_export_off():
    # (mamba_qa runs on torch only: Mamba exports only at a fixed sequence length.)
    entry_points = yaml.safe_load(MLPROJECT.read_text())["entry_points"]
    for name in ("bert_qa", "lstm_qa", "t5_qa"):
        assert "--export-onnx {export_onnx}" in entry_points[name]["command"], name
