"""The shared job trains the pruning and distillation variants and logs what the issue asks of every run."""

import mlflow
import pytest

from qa_common.jobs.train import run_job
from qa_common.testing.contract import TRAIN_SAMPLE, VALIDATION_SAMPLE, sample_directory


def test_a_dense_teacher_then_an_smp_kd_student_taught_by_its_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    sample = sample_directory()
    job = {"train_data": str(sample / TRAIN_SAMPLE), "eval_data": str(sample / VALIDATION_SAMPLE),
           "max_train_examples": 60, "max_eval_examples": 30, "epochs": 1, "batch_size": 16, "learning_rate": 3e-3,
           "system_metrics": False, "register": False, "benchmark": False, "export_onnx": True}
    teacher = run_job("bert_qa", "tiny", {**job, "output_dir": str(tmp_path / "teacher")})
    dense = mlflow.get_run(teacher["run_id"]).data.metrics
    assert dense["weight_density"] == 1.0 and "pruned_layers" not in dense

    student = run_job("bert_qa", "tiny", {**job, "output_dir": str(tmp_path / "student"), "pruning": "smp",
                                          "density": 0.1, "teacher": teacher["run_id"], "distill_alpha": 0.5,
                                          "pruning_schedule": "cubic", "logging_steps": 1})
    run = mlflow.get_run(student["run_id"])
    metrics, params = run.data.metrics, run.data.params
    # The cubic schedule: every weight kept on the first step, then down to the target.
    schedule = [m.value for m in sorted(mlflow.MlflowClient().get_metric_history(run.info.run_id, "pruning_density"),
                                        key=lambda m: m.step)]
    assert len(schedule) == metrics["train_steps"] > 3 and schedule[0] == 1.0
    assert schedule == sorted(schedule, reverse=True)
    assert schedule[-1] == pytest.approx(0.1, abs=0.001)
    assert params["model.teacher"] == teacher["run_id"] and params["model.pruning"] == "smp"
    assert metrics["pruned_layers"] == 12
    assert metrics["weight_density"] == pytest.approx(0.1, abs=0.01)  # measured from the saved weights
    linear = metrics["encoder_linear_weights"]
    # Non-zero parameters: everything but the pruned 90% of the encoder's linear weights (counted after saving).
    pruned_away = linear - round(metrics["weight_density"] * linear)
    assert metrics["parameters_non_zero"] <= dense["parameters_total"] - pruned_away + 10
    assert metrics["parameters_trainable"] == linear + 64 * 2 + 2  # mask scores and the QA head
    assert metrics["parameters_total"] == dense["parameters_total"]  # the saved model, scores applied and gone
    # The zeros compress away: the zipped weights shrink by most of the pruned weights' 4 bytes each (the tiny
    # model is mostly its unpruned word embeddings, so the whole file shrinks little).
    assert dense["model_size_zip_bytes"] - metrics["model_size_zip_bytes"] > 0.6 * 4 * pruned_away, (
        dense["model_size_zip_bytes"], metrics["model_size_zip_bytes"], pruned_away)
    assert metrics["onnx_max_abs_logit_diff"] < 1e-4
    for key in ("exact", "f1", "HasAns_f1", "NoAns_exact"):
        assert key in metrics


def test_under_torch_compile_packed_training_compiles_its_layers_and_the_trainer_compiles_nothing(tmp_path,
                                                                                                  monkeypatch):
    """The packing around the layers has data-dependent shapes: the job compiles the layers (as the GPU
    benchmark's packed-training figures do), not the whole training module."""
    from transformers import Trainer

    from bert_qa.fused import PackedSpanTrainer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    modes, compiled_whole = [], []
    # Compiling for real takes minutes on a CPU: record the call and train the eager layers.
    monkeypatch.setattr(PackedSpanTrainer, "compile_layers", lambda self, mode=None: modes.append(mode))
    original = Trainer.__init__

    def recording(self, *args, **kwargs):
        original(self, *args, **kwargs)
        compiled_whole.append(self.args.torch_compile)

    monkeypatch.setattr(Trainer, "__init__", recording)
    sample = sample_directory()
    result = run_job("bert_qa", "tiny", {
        "train_data": str(sample / TRAIN_SAMPLE), "eval_data": str(sample / VALIDATION_SAMPLE),
        "max_train_examples": 20, "max_eval_examples": 10, "max_steps": 2, "batch_size": 8,
        "system_metrics": False, "register": False, "benchmark": False, "export_onnx": False,
        "packed_training": True, "torch_compile": True, "torch_compile_mode": "max-autotune-no-cudagraphs",
        "output_dir": str(tmp_path / "out")})
    assert modes == ["max-autotune-no-cudagraphs"] and compiled_whole == [False]
    assert mlflow.get_run(result["run_id"]).data.params["torch_compile"] == "True"


def test_the_job_trains_with_packed_training_and_saves_the_trained_attention(tmp_path, monkeypatch):
    """packed_training through the shared job (HF Trainer, checkpoints, evaluation, save): the saved checkpoint
    is a plain transformers one whose Q/K/V are the trained ones, not the initial weights left behind."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    from qa_common.adapter import get_adapter

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    sample = sample_directory()
    result = run_job("bert_qa", "tiny", {
        "train_data": str(sample / TRAIN_SAMPLE), "eval_data": str(sample / VALIDATION_SAMPLE),
        "max_train_examples": 60, "max_eval_examples": 30, "epochs": 1, "batch_size": 16, "learning_rate": 3e-3,
        "system_metrics": False, "register": False, "benchmark": False, "export_onnx": False,
        "packed_training": True, "output_dir": str(tmp_path / "out")})
    run = mlflow.get_run(result["run_id"])
    assert run.data.params["model.packed_training"] == "True" and run.data.metrics["train_features_per_s"] > 0
    saved = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "out" / "model")
    adapter = get_adapter("bert_qa")
    initial = adapter.build(adapter.config("tiny")).module  # the same seeded initialisation the job started from
    for name in ("query", "key", "value"):
        trained = getattr(saved.bert.encoder.layer[0].attention.self, name).weight
        start = getattr(initial.bert.encoder.layer[0].attention.self, name).weight
        assert trained.shape == start.shape and not torch.allclose(trained, start), name
    # and the rest trained as well: the embeddings the packed module shares with the saved one moved too
    embeddings = saved.bert.embeddings.word_embeddings.weight, initial.bert.embeddings.word_embeddings.weight
    assert not torch.allclose(*embeddings)
