"""The training job's speed settings reach HF TrainingArguments as the README says."""

from __future__ import annotations

import dataclasses

from transformers import TrainingArguments

from qa_common.config import build_config
from qa_common.jobs.train import JobConfig, _speed_arguments


def test_speed_settings_become_training_arguments(tmp_path) -> None:
    job = build_config(JobConfig, {"group_by_length": "true", "gradient_checkpointing": "true",
                                   "dataloader_workers": "2", "optim": "auto"})
    arguments = TrainingArguments(output_dir=str(tmp_path), **_speed_arguments(job))
    assert arguments.optim.value == "adamw_torch"  # fused AdamW needs CUDA; auto picks it only there
    assert arguments.gradient_checkpointing is True
    assert arguments.dataloader_persistent_workers is True
    names = {field.name for field in dataclasses.fields(TrainingArguments)}
    if "train_sampling_strategy" in names:
        assert arguments.train_sampling_strategy == "group_by_length"
    else:
        assert arguments.group_by_length is True


def test_default_speed_settings_change_nothing_but_the_optimizer_on_a_gpu(tmp_path) -> None:
    arguments = _speed_arguments(JobConfig())
    assert arguments["gradient_checkpointing"] is False and arguments["torch_compile"] is False
    assert "train_sampling_strategy" not in arguments and "group_by_length" not in arguments
    assert _speed_arguments(JobConfig(optim="adamw_torch_fused"))["optim"] == "adamw_torch_fused"


def test_a_module_that_compiles_its_own_regions_is_not_compiled_whole() -> None:
    job = JobConfig(torch_compile=True, torch_compile_mode="max-autotune")
    assert _speed_arguments(job)["torch_compile"] is True
    assert _speed_arguments(job)["torch_compile_mode"] == "max-autotune"
    regional = _speed_arguments(job, compile_module=False)
    assert regional["torch_compile"] is False and "torch_compile_mode" not in regional
