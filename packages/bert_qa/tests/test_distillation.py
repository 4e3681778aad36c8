"""Knowledge distillation on tiny BERTs: the soft loss is the temperature-scaled KL it claims to be, it falls
as the student trains, and a teacher comes from a directory or an MLflow run."""

import math

import pytest
import torch

from bert_qa.adapter import BertAdapter
from bert_qa.distillation import Distiller, load_teacher, soft_span_loss
from qa_common.testing.contract import LearningCheck, learning_examples, train_briefly


def test_the_soft_loss_is_t_squared_times_the_mean_kl_over_start_and_end_with_padding_left_out():
    student_start, student_end = torch.tensor([[1.0, 2.0, 0.0, 9.0]]), torch.tensor([[0.0, 0.0, 3.0, -9.0]])
    teacher_start, teacher_end = torch.tensor([[2.0, 0.0, 1.0, -5.0]]), torch.tensor([[1.0, 1.0, 1.0, 7.0]])
    mask = torch.tensor([[True, True, True, False]])
    temperature = 2.0

    def kl(student, teacher):  # over the three real positions, by hand
        p = [math.exp(t / temperature) for t in teacher[:3]]
        q = [math.exp(s / temperature) for s in student[:3]]
        p, q = [x / sum(p) for x in p], [x / sum(q) for x in q]
        return sum(a * math.log(a / b) for a, b in zip(p, q))

    expected = temperature**2 * (kl([1.0, 2.0, 0.0], [2.0, 0.0, 1.0]) + kl([0.0, 0.0, 3.0], [1.0, 1.0, 1.0])) / 2
    loss = soft_span_loss(student_start, student_end, teacher_start, teacher_end, mask, temperature)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(soft_span_loss(teacher_start, teacher_end, teacher_start, teacher_end, mask, temperature)) == \
        pytest.approx(0.0, abs=1e-6)


def trained_teacher(directory):
    """A tiny model trained a little on real questions, saved: the teacher."""
    adapter = BertAdapter()
    teacher = adapter.build(adapter.config("tiny"))
    train_briefly(teacher, learning_examples(16), LearningCheck(steps=30, learning_rate=3e-3))
    teacher.save(directory)
    return teacher


@pytest.mark.parametrize("pruning", ["none", "smp"])
def test_the_distillation_loss_falls_for_a_dense_and_a_pruned_student(tmp_path, pruning):
    trained_teacher(tmp_path / "teacher")
    adapter = BertAdapter()
    settings = {"teacher": str(tmp_path / "teacher"), "distill_alpha": 0.0, "distill_temperature": 2.0}
    if pruning == "smp":
        settings.update(pruning="smp", density=0.5)
    student = adapter.build(adapter.config("tiny", {**settings, "num_hidden_layers": 1}))
    distiller = student.training_module()
    assert isinstance(distiller, Distiller) and distiller is student.training_module()
    # The teacher is not part of the student: not trained, not counted, not in its checkpoints.
    assert not any(name.startswith("teacher") or "_teacher" in name for name, _ in distiller.named_parameters())
    teacher_weights = {name: p.clone() for name, p in distiller.teacher.named_parameters()}

    losses = train_briefly(student, learning_examples(16), LearningCheck(steps=40, learning_rate=1e-2))
    assert all(math.isfinite(loss) for loss in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)  # alpha 0: the loss is the soft loss alone
    assert distiller.last_losses["soft"] == pytest.approx(losses[-1], rel=1e-4)
    assert all(torch.equal(p, teacher_weights[name]) for name, p in distiller.teacher.named_parameters())

    figures = student.finish_training()
    assert student.teacher is None and student.training_module() is student.module
    assert ("pruned_layers" in figures) == (pruning == "smp")


def test_a_teacher_with_another_vocabulary_is_refused(tmp_path):
    trained_teacher(tmp_path / "teacher")
    adapter = BertAdapter()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "teacher")
    tokenizer.add_tokens(["squadqaextratoken"])
    tokenizer.save_pretrained(tmp_path / "teacher")
    with pytest.raises(ValueError, match="another vocabulary"):
        adapter.build(adapter.config("tiny", {"teacher": str(tmp_path / "teacher")}))


def test_an_unknown_teacher_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_teacher(str(tmp_path / "nowhere"))


def test_the_hidden_state_loss_is_the_mean_over_layers_of_the_squared_error_at_real_tokens():
    from bert_qa.distillation import hidden_state_loss

    mask = torch.tensor([[True, True, False]])
    embeddings = torch.zeros(1, 3, 2)  # left out
    student = (embeddings + 5, torch.tensor([[[1.0, 2.0], [0.0, 0.0], [9.0, 9.0]]]),
               torch.tensor([[[1.0, 1.0], [1.0, 1.0], [7.0, 7.0]]]))
    teacher = (embeddings, torch.tensor([[[0.0, 2.0], [0.0, 2.0], [0.0, 0.0]]]), torch.ones(1, 3, 2))
    # layer 1: squared errors 1, 0, 0, 4 over 2 tokens x 2 dims = 5/4; layer 2: 0; mean of the two: 5/8
    assert float(hidden_state_loss(student, teacher, mask)) == pytest.approx(5 / 8)


def test_hidden_state_distillation_falls_and_needs_a_teacher_of_the_students_shape(tmp_path):
    trained_teacher(tmp_path / "teacher")
    adapter = BertAdapter()
    settings = {"teacher": str(tmp_path / "teacher"), "distill_alpha": 1.0, "distill_hidden": 1.0,
                "pruning": "smp", "density": 0.5}
    student = adapter.build(adapter.config("tiny", settings))
    distiller = student.training_module()
    losses = train_briefly(student, learning_examples(16), LearningCheck(steps=40, learning_rate=1e-2))
    hidden = distiller.last_losses["hidden"]
    assert all(math.isfinite(loss) for loss in losses)
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    # alpha 1: the loss is the span loss plus the hidden-state loss, nothing of the soft one
    assert losses[-1] == pytest.approx(distiller.last_losses["hard"] + hidden, rel=1e-4)

    shallow = adapter.build(adapter.config("tiny", {**settings, "num_hidden_layers": 1}))
    with pytest.raises(ValueError, match="the student has 1 layers of width 64, the teacher 2 of width 64"):
        shallow.training_module()
    with pytest.raises(ValueError, match="distill_hidden must be 0 or more"):
        adapter.build(adapter.config("tiny", {**settings, "distill_hidden": -1.0})).training_module()
