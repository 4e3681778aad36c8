"""The side-by-side speed benchmark (qa_common.jobs.speed) on a tiny random reader on the CPU."""

from __future__ import annotations

import json

import pytest

from qa_common.extractive import InferenceOptions
from qa_common.jobs.speed import SpeedSettings, encoder_flops_per_sequence, peak_tflops, run_side_by_side

SAMPLE = "data/sample/validation-v2.0-sample.json"


def test_flops_of_bert_base_at_384_and_the_peak_by_gpu_name() -> None:
    # 12 x (4 x 768^2 + 2 x 768 x 3072) + 2 x 768 matmul weights, x 2 x 384, + 4 x 12 x 384^2 x 768.
    assert encoder_flops_per_sequence(768, 12, 3072, 384) == pytest.approx(70.667e9, rel=1e-4)
    assert peak_tflops("NVIDIA H200") == 989.0
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA H200", 700.0) == 700.0
    assert peak_tflops("CPU x86_64 (2 cores)") is None


def test_side_by_side_report_names_hardware_commit_and_command_and_paths_agree(tmp_path) -> None:
    settings = SpeedSettings(batch_size=8, model_only_batch_sizes=(1, 2), sequence_length=64,
                             model_only_seconds=0.05, latency_questions=3, repeats=1, pipeline="off")
    result = run_side_by_side("bert_qa:tiny", SAMPLE, settings=settings, options=InferenceOptions(max_batch_tokens=512),
                              report_dir=tmp_path, commit="abc123", command="squad-qa benchmark ...",
                              max_examples=24, experiment=None)
    saved = json.loads((tmp_path / "speed.json").read_text())
    report = (tmp_path / "speed.md").read_text()
    assert saved["commit"] == "abc123" and "CPU" in saved["hardware"]
    assert "abc123" in report and "squad-qa benchmark ..." in report and saved["hardware"] in report
    ours, plain, pipeline = result["paths"]
    for path in (ours, plain):
        assert path["figures"]["questions_per_s"] > 0 and path["figures"]["model_seq_per_s_b2"] > 0
        assert path["figures"]["real_windows"] == saved["windows"]
    # The same weights, fp32 on the CPU: the fast path answers exactly as the plain one.
    assert plain["figures"]["answers_differing_from_ours"] == 0
    assert (ours["figures"]["exact"], ours["figures"]["f1"]) == (plain["figures"]["exact"], plain["figures"]["f1"])
    assert ours["figures"]["real_padded_tokens_share"] < plain["figures"]["real_padded_tokens_share"]
    assert pipeline["notes"]["unavailable"].startswith("not run")


def test_real_windows_time_a_packed_runner_on_its_packed_forward() -> None:
    """The real-window figure runs batches as predict does: a packed module's batches with padding go through
    its packed forward (the H200 figures once timed the padded forward for it, and a PackedBatch broke the
    padding share)."""

    from bert_qa.fused import PackedBertQA
    from qa_common.adapter import get_adapter
    from qa_common.data.readers import load_squad
    from qa_common.extractive import TorchRunner
    from qa_common.jobs.speed import real_windows

    adapter = get_adapter("bert_qa")
    model = adapter.build(adapter.config("tiny")).to("cpu")
    packed = PackedBertQA(model.module.eval())
    calls = []
    forward_packed = packed.forward_packed
    packed.forward_packed = lambda *args, **kwargs: calls.append(kwargs["input_ids"].shape[0]) or \
        forward_packed(*args, **kwargs)
    model.runner = TorchRunner(packed, packed=True)
    features = model.windows(load_squad(SAMPLE).examples[:24], with_labels=False)
    settings = SpeedSettings(batch_size=8, repeats=1)
    figures = real_windows(model, features, InferenceOptions(), 8, settings, None, None)
    lengths = features.lengths()
    assert figures["real_windows"] == len(features) and figures["real_windows_per_s"] > 0
    plan = list(model.batch_plan(lengths, 8, InferenceOptions()))
    with_padding = [int(lengths[indices].sum()) for indices, _, _ in plan
                    if lengths[indices].min() < lengths[indices].max()]
    assert with_padding and len(with_padding) < len(plan)  # some batches pack, full ones run padded
    passes = len(calls) // len(with_padding)
    assert passes >= 2 and calls == with_padding * passes  # exactly their real tokens, every pass
    padded = sum(length * len(indices) for indices, length, _ in plan)
    assert figures["real_padded_tokens_share"] == pytest.approx(padded / lengths.sum() - 1.0)
