"""lm-evaluation-harness from our CLI: the offline squad_qa_v2 task on a tiny random GPT-2 logged as an MLflow run,
and its EM equal to squad-qa's scorer on the same generations, unanswerable questions included (a scripted model
answers some questions right, says "I don't know" to others and writes nonsense for the rest)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from e2e import save_tiny_causal_lm

from qa_common.data.readers import load_squad
from qa_common.prompts import answer_from_generation
from qa_common.scoring import score_predictions
from qa_common.testing.contract import TRAIN_SAMPLE, VALIDATION_SAMPLE, sample_directory

lm_eval = pytest.importorskip("lm_eval", reason="the lm-eval extra (make install installs it)")
LM = pytest.importorskip("lm_eval.api.model").LM


def our_scores(samples: list[dict], path: Path) -> dict:
    """squad-qa's official scores of lm-eval's generations, on the questions lm-eval asked."""
    by_id = {example.id: example for example in load_squad(path).examples}
    asked = [by_id[sample["doc"]["id"]] for sample in samples]
    answers = {sample["doc"]["id"]: answer_from_generation(sample["filtered_resps"][0], "I don't know")
               for sample in samples}
    return score_predictions(asked, answers)


def test_squad_qa_v2_runs_on_a_tiny_model_and_logs_its_results(tmp_path, monkeypatch, capsys):
    import mlflow

    from qa_common.cli import main

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    model = save_tiny_causal_lm("gpt2", tmp_path / "tiny-gpt2")
    sample = sample_directory()
    try:
        code = main(["lm-eval", str(model), "--tasks", "squad_qa_v2", "--eval-data", str(sample / VALIDATION_SAMPLE),
                     "--train-data", str(sample / TRAIN_SAMPLE), "--num-fewshot", "1", "--limit", "6",
                     "--max-new-tokens", "4", "--device", "cpu", "--experiment", "harness"])
    finally:
        torch.set_num_threads(previous)
    assert code == 0, capsys.readouterr().err[-2000:]
    run = mlflow.search_runs(experiment_names=["harness"], output_format="list")[0]
    assert run.data.tags["squad_qa.kind"] == "lm-eval" and run.data.tags["model_type"] == "gpt2"
    assert run.data.params["lm_eval.num_fewshot"] == "1" and run.info.status == "FINISHED"
    client = mlflow.MlflowClient()
    lines = Path(client.download_artifacts(run.info.run_id, "samples/squad_qa_v2.jsonl", str(tmp_path)))
    samples = [json.loads(line) for line in lines.read_text().splitlines()]
    assert len(samples) == 6 and all(sample["arguments"][0][0].count("\nQ: ") == 2 for sample in samples)
    ours = our_scores(samples, sample / VALIDATION_SAMPLE)
    for metric in ("exact", "f1"):
        assert run.data.metrics[f"squad_qa_v2/{metric}"] * 100 == pytest.approx(ours[metric])
    results = json.loads(Path(client.download_artifacts(run.info.run_id, "lm_eval_results.json",
                                                        str(tmp_path))).read_text())
    assert results["results"]["squad_qa_v2"]["exact,none"] == run.data.metrics["squad_qa_v2/exact"]


class ScriptedModel(LM):
    """Answers every third question with its gold answer (or "I don't know" when it has none), says "I don't
    know" to the next and writes a word of the context to the third."""

    def generate_until(self, requests):
        replies = []
        for number, request in enumerate(requests):
            answers = request.doc["answers"]
            if number % 3 == 0:
                replies.append(f" {answers[0] if answers else 'I do not know.'}\n")
            elif number % 3 == 1:
                replies.append(" I don't know")
            else:
                replies.append(" " + request.doc["context"].split()[number % 5])
        return replies

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


def test_squad_qa_v2_exact_match_is_our_scorers_and_counts_a_right_i_dont_know():
    from lm_eval.tasks import TaskManager

    from qa_common.jobs.lm_eval import TASKS_DIRECTORY

    validation = sample_directory() / VALIDATION_SAMPLE
    manager = TaskManager(include_path=str(TASKS_DIRECTORY), metadata={"eval_data": str(validation)})
    results = lm_eval.simple_evaluate(model=ScriptedModel(), tasks=["squad_qa_v2"], task_manager=manager, limit=60,
                                      num_fewshot=0, log_samples=True, bootstrap_iters=0)
    samples = results["samples"]["squad_qa_v2"]
    ours = our_scores(samples, validation)
    scores = results["results"]["squad_qa_v2"]
    assert 20 < ours["exact"] < 80 and ours["NoAns_total"] > 5 and ours["NoAns_exact"] > 0
    for metric in ("exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact"):
        assert scores[f"{metric},none"] * 100 == pytest.approx(ours[metric]), metric
