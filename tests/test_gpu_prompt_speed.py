"""scripts/gpu_prompt_speed.py (the tokens/s columns of the prompting study on a GPU) runs on the CPU with --tiny:
the same prompts for every model, three-shot prompts longer than zero-shot ones, and figures for each setting."""

import json
import runpy

import pytest
from e2e import REPO


def test_the_gpu_speed_script_runs_tiny_models_on_the_cpu(tmp_path, monkeypatch):
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    script = runpy.run_path(str(REPO / "scripts" / "gpu_prompt_speed.py"))
    try:
        assert script["main"](["--tiny", "--out", str(tmp_path), "--device", "cpu", "--questions", "2",
                               "--new-tokens", "3", "--loop-batch-sizes", "1,2"]) == 0
    finally:
        torch.set_num_threads(previous)
    results = json.loads((tmp_path / "gpu_prompt_speed.json").read_text())
    assert results["batch_size"] == 1 and len(results["questions"]) == 2
    assert set(results["models"]) == {"mamba-130m", "rwkv-169m", "gpt2-124m"}
    zero = {name: entry["settings"]["0-shot"] for name, entry in results["models"].items()}
    three = {name: entry["settings"]["3-shot"] for name, entry in results["models"].items()}
    assert len({figures["prompt_tokens_mean"] for figures in zero.values()}) == 1  # the same prompts for all
    for name in zero:
        assert three[name]["prompt_tokens_mean"] > zero[name]["prompt_tokens_mean"] + 100
        for figures in (zero[name], three[name]):
            assert figures["decode_tokens_per_s"] > 0 and figures["prompt_processing_ms_median"] > 0
            assert figures["new_tokens"] == 3 and figures["prompts"] == 2
        assert results["models"][name]["loop_equals_generate"] is True
        for k in (0, 3):
            for batch_size in (1, 2):
                loop = results["models"][name]["settings"][f"{k}-shot loop b{batch_size}"]
                assert loop["batch_size"] == batch_size and loop["decode_tokens_per_s"] > 0
    assert results["models"]["gpt2-124m"]["code_path"] == "attention: sdpa"
    assert results["models"]["mamba-130m"]["code_path"].startswith("mamba reference")
    with pytest.raises(SystemExit):
        script["main"](["--tiny", "--out", str(tmp_path), "--models", "llama"])
