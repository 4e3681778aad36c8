"""t5_qa against the contract every architecture meets (qa_common.testing.contract)."""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from qa_common.adapter import load_model
from qa_common.jobs.benchmark import directory_size_bytes
from qa_common.serving import QAService
from qa_common.testing.contract import (
    AdapterContract,
    LearningCheck,
    answer_all_f1,
    assert_lora_saves_reloads_and_merges,
    assert_same_predictions,
    learning_examples,
    mean_loss,
    save_model,
    train_briefly,
)
from t5_qa.export import parity_figures
from t5_qa.model import T5QAModel
from t5_qa.runtimes import OnnxSeq2Seq
from t5_qa.text import align_to_context, is_no_answer


class TestT5Contract(AdapterContract):
    adapter_name = "t5_qa"
    preset = "tiny"
    learning_overrides = {"steps": 120, "learning_rate": 3e-3}

    def labelled_answers(self, model, examples):
        """Each window's target tokens decoded and mapped back to its context; the no-answer text is None."""
        dataset = model.training_dataset(examples)
        labelled = []
        for index, labels in enumerate(dataset.labels):
            example_index = dataset.features.example_index[index]
            text = model.tokenizer.decode(labels, skip_special_tokens=True)
            if is_no_answer(text, model.config.no_answer_text):
                labelled.append((example_index, None))
            else:
                labelled.append((example_index, align_to_context(text, examples[example_index].context)))
        return labelled

    # -- t5_qa's own checks on the model the contract trained (training it once keeps the suite short) ---------

    @pytest.fixture(scope="class")
    def checkpoint(self, trained, tmp_path_factory) -> Path:
        """The trained tiny T5 as an ordinary transformers checkpoint directory, as t5-base is on the hub."""
        directory = tmp_path_factory.mktemp("t5-checkpoint")
        trained.model.module.save_pretrained(directory)
        trained.model.tokenizer.save_pretrained(directory)
        return directory

    def test_a_checkpoint_directory_loads_through_the_pretrained_path(self, adapter, checkpoint, examples,
                                                                      predictions):
        config = adapter.config("t5-small", {"model_name": str(checkpoint), "max_length": 128, "doc_stride": 32,
                                             "max_question_length": 32, "max_answer_tokens": 16})
        model = adapter.build(config)
        assert config.from_pretrained and model.module.config.d_model == 64
        assert_same_predictions(model.predict(examples, batch_size=8), predictions, atol=1e-6)

    def test_lora_trains_the_configured_share_and_merged_equals_unmerged(self, adapter, checkpoint, tmp_path):
        config = adapter.config("tiny-lora", {"model_name": str(checkpoint), "tokenizer_name": "",
                                              "from_pretrained": True, "lora_rank": 8, "lora_alpha": 16,
                                              "lora_target_modules": "q,k,v,o,wi,wo"})
        torch.manual_seed(0)
        model = adapter.build(config)
        counts = model.parameter_counts()
        # rank x (in + out) per adapted linear: 2 encoder and 2 decoder blocks; q, k, v, o are 64 -> 64 in the
        # self-attention of both and the decoder's cross-attention; wi 64 -> 128, wo 128 -> 64 in each block.
        per_attention = 4 * 8 * (64 + 64)
        per_feed_forward = 2 * 8 * (64 + 128)
        expected = 2 * (per_attention + per_feed_forward) + 2 * (2 * per_attention + per_feed_forward)
        assert counts.trainable == expected
        assert counts.total == expected + sum(p.numel() for p in model.seq2seq().parameters()
                                              if not p.requires_grad)
        assert counts.trainable / counts.total < 0.04

        # Fresh questions the base has not seen: LoRA alone has to learn them.
        examples = learning_examples(24)[16:]
        loss_before, f1_before = mean_loss(model, examples), answer_all_f1(model, examples)
        train_briefly(model, examples, LearningCheck(steps=50, learning_rate=1e-2))
        loss_after, f1_after = mean_loss(model, examples), answer_all_f1(model, examples)
        assert loss_after < 0.6 * loss_before, (loss_before, loss_after)
        assert f1_after > f1_before + 10, (f1_before, f1_after)
        assert_lora_saves_reloads_and_merges(model, adapter, config, examples, tmp_path)

    def test_onnx_runtime_generates_exactly_what_pytorch_generates(self, adapter, trained, saved, onnx_parity,
                                                                   examples, predictions):
        """The contract's export (encoder, decoder, decoder-with-past) decodes every window of the validation
        questions and of the questions the model learned (varied answers) as PyTorch does, in batches and alone."""
        assert onnx_parity["onnx_generation_mismatches"] == onnx_parity["onnx_answer_mismatches"] == 0
        assert onnx_parity["onnx_parity_features"] > len(examples)  # some contexts take several windows
        assert onnx_parity["onnx_max_abs_no_answer_probability_diff"] < 1e-4
        assert onnx_parity["onnx_max_abs_score_diff"] < 1e-4
        exported = adapter.load(saved.directory, runtime="onnx")
        assert exported.module is None and isinstance(exported.onnx, OnnxSeq2Seq)

        learned = trained.model.predict(trained.examples)
        assert len({prediction.text for prediction in learned.values()}) >= 8  # not one word for every question
        figures = parity_figures(trained.model, exported, trained.examples)
        assert figures["onnx_generation_mismatches"] == figures["onnx_answer_mismatches"] == 0
        assert figures["onnx_max_abs_logit_diff"] < 1e-4
        assert figures["onnx_max_abs_no_answer_probability_diff"] < 1e-4
        # One window at a time (batch 1, each its own length), as a single served question runs.
        for example in [*examples[:2], *examples[-2:], *trained.examples[:2]]:
            expected = predictions.get(example.id) or learned[example.id]
            assert_same_predictions(exported.predict([example], batch_size=1), {example.id: expected}, atol=1e-4)

        records = [{"question": e.question, "context": e.context} for e in examples]
        served = QAService.from_directory(saved.directory, runtime="onnx").answer(records)
        reference = QAService.from_directory(saved.directory).answer(records)
        assert [r["answer"] for r in served] == [r["answer"] for r in reference]
        assert max(abs(a["no_answer_probability"] - b["no_answer_probability"])
                   for a, b in zip(served, reference)) < 1e-4

    def test_int8_dynamic_quantization_is_smaller_and_answers_alike(self, adapter, trained, tmp_path):
        float_model = trained.model
        float_dir = save_model(float_model, adapter, trained.config, tmp_path / "float")
        config = dataclasses.replace(trained.config, variant="int8")
        quantized = T5QAModel(copy.deepcopy(float_model.module), float_model.tokenizer, config)
        figures = quantized.finish_training()
        # Every linear but the lm_head, which shares its matrix with the embedding: 2 x 6 + 2 x 10.
        assert figures["int8_linear_layers"] == 32
        assert quantized.parameter_counts().total == float_model.parameter_counts().total  # int8 weights count
        int8_dir = save_model(quantized, adapter, config, tmp_path / "int8")

        def linear_bytes(directory):
            from safetensors import safe_open

            with safe_open(next(directory.glob("model/*.safetensors")), "pt") as weights:
                return sum(weights.get_tensor(key).nbytes for key in weights.keys()
                           if "block" in key and "layer_norm" not in key and "relative_attention" not in key)

        assert linear_bytes(int8_dir) < 0.4 * linear_bytes(float_dir)  # int8 + one scale per row vs fp32
        assert directory_size_bytes(int8_dir) < directory_size_bytes(float_dir)

        examples = trained.examples
        expected = float_model.predict(examples)
        actual = quantized.predict(examples)
        same = sum(actual[qid].text == expected[qid].text for qid in expected)
        assert same >= 0.75 * len(expected)
        assert answer_all_f1(quantized, examples) > trained.f1_after - 15
        loaded, _ = load_model(int8_dir)
        assert_same_predictions(loaded.predict(examples), actual, atol=1e-6)
        # ONNX Runtime would run other INT8 arithmetic than PyTorch's dynamic quantization: no export.
        assert "dynamic INT8" in quantized.onnx_export_refusal()
        with pytest.raises(ValueError, match="does not export this model to ONNX"):
            quantized.export_onnx(tmp_path / "int8-onnx", examples)

    def test_beam_search_decodes_and_is_not_exported(self, adapter, trained):
        config = dataclasses.replace(trained.config, num_beams=2)
        model = T5QAModel(trained.model.module, trained.model.tokenizer, config)
        examples = trained.examples[:4]
        beams = model.predict(examples, batch_size=2)
        greedy = trained.model.predict(examples, batch_size=2)
        assert set(beams) == set(greedy) and all(prediction.text for prediction in beams.values())
        assert "num_beams 2" in model.onnx_export_refusal()

    def test_a_pickled_checkpoint_is_refused(self, adapter, trained, tmp_path):
        directory = save_model(trained.model, adapter, trained.config, tmp_path / "model")
        assert not [path for path in directory.rglob("*") if path.suffix in (".bin", ".pt", ".pth", ".pkl")]
        (directory / "model" / "model.safetensors").rename(directory / "model" / "pytorch_model.bin")
        with pytest.raises(OSError, match="safetensors"):
            load_model(directory)

    @pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error a CPU-only machine gives")
    def test_bitsandbytes_variants_fail_clearly_without_a_gpu(self, adapter, trained, tmp_path):
        for overrides in ({"variant": "qlora"}, {"variant": "int8", "int8_backend": "bitsandbytes"}):
            with pytest.raises(RuntimeError, match="needs a CUDA GPU|on a CUDA GPU"):
                adapter.build(adapter.config("tiny", overrides))
        for preset in ("t5-base-qlora", "t5-base-int8-bnb"):
            with pytest.raises(RuntimeError, match="CUDA GPU"):
                adapter.build(adapter.config(preset))
        directory = save_model(trained.model, adapter, trained.config, tmp_path / "bnb")
        saved = json.loads((directory / "model" / "config.json").read_text())
        saved["quantization_config"] = {"load_in_8bit": True, "quant_method": "bitsandbytes"}
        (directory / "model" / "config.json").write_text(json.dumps(saved))
        with pytest.raises(RuntimeError, match="CUDA GPU"):
            load_model(directory)
