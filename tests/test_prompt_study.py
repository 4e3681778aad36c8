"""The prompting study on tiny random Mamba, RWKV and GPT-2 models saved as checkpoint directories (with mamba_qa's
offline 4,096-token BPE): the stop rule, shots that never give the question away, official scores of the logged
answers, child runs under the parent, the report, LoRA adapter directories, and bad input refused up front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from e2e import save_tiny_causal_lm

from mamba_qa.tokenizer import TINY_TOKENIZER_DIRECTORY
from qa_common.causal_lm import greedy_generate, load_causal_lm, load_tokenizer
from qa_common.data.readers import load_squad
from qa_common.jobs.prompt_eval import (
    PromptBuilder,
    PromptEvalConfig,
    run_prompt_eval,
    sample_questions,
    study_shot_pool,
)
from qa_common.scoring import answer_in_generation, score_predictions
from qa_common.testing.contract import TRAIN_SAMPLE, VALIDATION_SAMPLE, sample_directory


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-lms")
    return {model_type: save_tiny_causal_lm(model_type, root / f"tiny-{model_type}")
            for model_type in ("mamba", "rwkv", "gpt2")}


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_the_stop_rule_cuts_at_the_first_stop_token_and_keeps_it(tiny_models):
    lm = load_causal_lm(tiny_models["rwkv"], device="cpu")
    prompt = lm.tokenizer("Denver won.\n\nQ: Who won?\nA:")["input_ids"]
    free = greedy_generate(lm.module, prompt, stop_ids=[], max_new_tokens=8, min_new_tokens=8)
    assert len(free.token_ids) == 8 and not free.stopped and free.decode_tokens == 7
    assert free.prompt_tokens == len(prompt) and free.prompt_seconds > 0 and free.decode_seconds > 0
    cut = next(index for index, token in enumerate(free.token_ids) if index >= 2
               and token not in free.token_ids[:index])
    stopped = greedy_generate(lm.module, prompt, stop_ids=[free.token_ids[cut]], max_new_tokens=8)
    assert stopped.token_ids == free.token_ids[: cut + 1] and stopped.stopped
    # Greedy is greedy: the same tokens as transformers' own generate.
    reference = lm.module.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=8, min_new_tokens=8,
                                   pad_token_id=0)
    assert tuple(reference[0, len(prompt):].tolist()) == free.token_ids


def test_k_shot_prompts_come_from_training_data_and_never_hold_the_question_asked():
    sample = sample_directory()
    config = PromptEvalConfig(shots=(0, 3), seed=1)
    train = load_squad(sample / TRAIN_SAMPLE).examples
    pool = study_shot_pool(train, config)
    assert len(pool) == 4 and len({shot.context for shot in pool}) == 4
    train_ids = {example.id for example in train}
    assert all(shot.question_id in train_ids for shot in pool)
    # Asking the training questions the shots were drawn from is the hardest case: each must get 3 others.
    asked = [example for example in train if example.id in {shot.question_id for shot in pool}]
    asked += sample_questions(load_squad(sample / VALIDATION_SAMPLE).examples, 10, seed=1)
    builder = PromptBuilder(load_tokenizer(TINY_TOKENIZER_DIRECTORY), config, pool, None)
    for example in asked:
        text = builder.text(example, 3)
        shots_part = text[: text.rindex(example.context)]
        assert shots_part.count("\nQ: ") == 3, example.id
        assert example.question.strip() not in shots_part and example.context not in shots_part
        assert text.endswith(f"{example.context}\n\nQ: {example.question.strip()}\nA:")
        assert builder.text(example, 0) == f"{example.context}\n\nQ: {example.question.strip()}\nA:"
        ids = builder.build(example, 3).ids
        assert builder.tokenizer.decode(ids) == text
    # A prompt longer than the limit keeps the shots and the question, and cuts the context's end.
    whole = builder.build(asked[-1], 3)
    short = PromptBuilder(builder.tokenizer, config, pool, len(whole.ids) - 30)
    prompt = short.build(asked[-1], 3)
    assert len(prompt.ids) == len(whole.ids) - 30 and prompt.truncated and not whole.truncated
    tail = len(short._ids(f"\n\nQ: {asked[-1].question.strip()}\nA:"))
    assert prompt.ids[:-tail] == whole.ids[: len(prompt.ids) - tail] and prompt.ids[-tail:] == whole.ids[-tail:]
    assert short.tokenizer.decode(prompt.ids).endswith(f"\n\nQ: {asked[-1].question.strip()}\nA:")
    with pytest.raises(ValueError, match="leave no room for its context within 50 prompt tokens"):
        PromptBuilder(builder.tokenizer, config, pool, 50).build(asked[-1], 3)


def test_the_study_logs_a_child_run_per_model_and_k_scored_by_the_shared_scorer(tiny_models, tmp_path,
                                                                                monkeypatch, capsys):
    import mlflow

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    sample = sample_directory()
    models = [str(tiny_models[name]) for name in ("mamba", "rwkv", "gpt2")]
    result = run_prompt_eval({"models": ",".join(models), "shots": "0,1", "sample_size": 6, "seed": 3,
                              "eval_data": str(sample / VALIDATION_SAMPLE), "train_data": str(sample / TRAIN_SAMPLE),
                              "max_new_tokens": 4, "experiment": "prompting", "device": "cpu"}, progress=False)
    client = mlflow.MlflowClient(tracking_uri=uri)
    parent = client.get_run(result["run_id"])
    assert parent.data.tags["squad_qa.kind"] == "prompt-study" and parent.info.status == "FINISHED"
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{result['run_id']}'")
    assert sorted(run.info.run_name for run in children) == sorted(
        f"tiny-{name}-{k}shot" for name in ("mamba", "rwkv", "gpt2") for k in (0, 1))
    examples = sample_questions(load_squad(sample / VALIDATION_SAMPLE).examples, 6, seed=3)
    code_paths = set()
    for child in children:
        metrics = child.data.metrics
        predictions = json.loads(Path(client.download_artifacts(child.info.run_id, "predictions.json",
                                                                str(tmp_path))).read_text())
        assert set(predictions) == {example.id for example in examples}
        for key, value in score_predictions(examples, predictions).items():
            assert metrics[key] == pytest.approx(value), (child.info.run_name, key)
        accuracy = 100 * sum(answer_in_generation(predictions[example.id], [a.text for a in example.answers])
                             for example in examples) / len(examples)
        assert metrics["accuracy"] == pytest.approx(accuracy)
        assert metrics["questions"] == 6 and metrics["prompt_processing_ms_mean"] > 0
        assert metrics["decode_tokens_per_s"] > 0 and metrics["prompt_tokens_mean"] > 100
        records = Path(client.download_artifacts(child.info.run_id, "generations.jsonl", str(tmp_path)))
        assert len(records.read_text().splitlines()) == 6
        assert child.data.params["shots"] == child.data.tags["shots"]
        code_paths.add(child.data.tags["code_path"])
    assert code_paths == {"mamba reference (PyTorch selective scan)", "rwkv reference (PyTorch wkv loop)",
                          "attention: sdpa"}
    one_shot = {run.data.tags["model"]: run.data.metrics["prompt_tokens_mean"] for run in children
                if run.data.tags["shots"] == "1"}
    zero_shot = {run.data.tags["model"]: run.data.metrics["prompt_tokens_mean"] for run in children
                 if run.data.tags["shots"] == "0"}
    assert all(one_shot[model] > zero_shot[model] + 20 for model in models)
    # The report: the seed study's table from these runs, as markdown and a plot on the parent run.
    artifacts = {item.path for item in client.list_artifacts(result["run_id"])}
    assert {"prompt_study.md", "accuracy_vs_tokens_per_s.png", "shots.json"} <= artifacts
    table = result["report"]["markdown"]
    assert "| model | accuracy (0-shot) | tokens/s (0-shot) | accuracy (1-shot) | tokens/s (1-shot) |" in table
    assert all(model in table for model in models)
    # squad-qa prompt-report writes it again from the runs (the newest study of the experiment by default).
    from qa_common.cli import main

    assert main(["prompt-report", "--experiment", "prompting", "--output-dir", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "prompt_study.md").read_text() == table and table in capsys.readouterr().out
    assert (tmp_path / "report" / "accuracy_vs_tokens_per_s.png").stat().st_size > 10_000


def test_a_lora_adapter_directory_is_evaluated_on_its_base(tiny_models, tmp_path):
    from peft import LoraConfig, get_peft_model

    base = load_causal_lm(tiny_models["gpt2"], device="cpu")
    torch.manual_seed(0)
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"], init_lora_weights=False)
    tuned = get_peft_model(base.module, lora)
    tuned.save_pretrained(tmp_path / "adapter")
    adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(tiny_models["gpt2"])
    loaded = load_causal_lm(tmp_path / "adapter", device="cpu")
    assert loaded.source == "lora-adapter" and loaded.model_type == "gpt2"
    ids = torch.tensor([loaded.tokenizer("Q: Who?\nA:")["input_ids"]])
    plain = load_causal_lm(tiny_models["gpt2"], device="cpu").module(ids).logits
    with torch.no_grad():
        assert torch.allclose(loaded.module(ids).logits, tuned(ids).logits, atol=1e-5)
        assert not torch.allclose(loaded.module(ids).logits, plain, atol=1e-3)


@pytest.mark.parametrize(("settings", "message"), [
    (["--shots", "0,-1"], "shots must be whole numbers of at least 0"),
    (["--sample-size", "100000"], "sample_size 100000 is larger than the"),
    (["--models", "./no/such/model"], "model './no/such/model': no such model directory"),
    (["--shots", "0", "--max-new-tokens", "0"], "max_new_tokens must be at least 1"),
    (["--sample-sise", "3"], "unknown PromptEvalConfig key(s): sample_sise"),
])
def test_bad_input_is_one_line_exit_2_and_no_run(settings, message, tiny_models, tmp_path, monkeypatch, capsys):
    from qa_common.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    sample = sample_directory()
    code = main(["prompt-eval", "--models", str(tiny_models["gpt2"]), "--eval-data", str(sample / VALIDATION_SAMPLE),
                 "--train-data", str(sample / TRAIN_SAMPLE), *settings])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1 and error[0].startswith("squad-qa prompt-eval: error: "), error
    assert message in error[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()


def test_a_hub_name_that_cannot_be_reached_is_refused_before_any_run(tmp_path, monkeypatch, capsys):
    from qa_common.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # as make test runs (no hub here)
    sample = sample_directory()
    assert main(["prompt-eval", "--models", "no-such-org/no-such-model", "--shots", "0", "--eval-data",
                 str(sample / VALIDATION_SAMPLE)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "model 'no-such-org/no-such-model' cannot be loaded" in error[0], error
    assert not (tmp_path / "mlflow.db").exists()


def test_inside_mlflow_run_the_project_run_is_the_parent_of_new_child_runs(tiny_models, tmp_path, monkeypatch):
    # `mlflow run` sets MLFLOW_RUN_ID; a nested start_run without an id would resume that run instead.
    import mlflow

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    project_run = client.create_run(client.create_experiment("squad-qa-prompting")).info.run_id
    monkeypatch.setenv("MLFLOW_RUN_ID", project_run)
    sample = sample_directory()
    result = run_prompt_eval({"models": str(tiny_models["gpt2"]), "shots": "0,1", "sample_size": 2,
                              "eval_data": str(sample / VALIDATION_SAMPLE), "train_data": str(sample / TRAIN_SAMPLE),
                              "max_new_tokens": 2, "device": "cpu", "report": False}, progress=False)
    assert result["run_id"] == project_run and len(set(result["child_run_ids"]) | {project_run}) == 3
    for child in result["child_run_ids"]:
        assert client.get_run(child).data.tags["mlflow.parentRunId"] == project_run
    assert "shots" not in client.get_run(project_run).data.params
