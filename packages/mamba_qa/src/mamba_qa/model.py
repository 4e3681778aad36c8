"""Building, training features, generation, saving and loading of Mamba QA models (any transformers Mamba
checkpoint: state-spaces/mamba-130m-hf and its larger siblings by hub name, or a local directory), full or LoRA.

The same reader runs any transformers causal LM whose ``model_type`` the config names (the seed study's
peft-gpt2: ``--preset gpt2-lora``): only Mamba gets the kernel switch and Mamba's LoRA target rule, and decoding
keeps a key/value cache with position ids for attention models where Mamba keeps its recurrent state."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, MambaConfig, MambaForCausalLM

from mamba_qa.config import LORA_TARGETS, MambaQAConfig
from mamba_qa.kernels import KernelSwitch, check_kernel_mode
from mamba_qa.prompts import (
    Shot,
    answer_from_generation,
    check_template,
    make_random_question_negatives,
    render_shot,
    shot_pool,
    shots_for,
    split_template,
)
from mamba_qa.tokenizer import resolve_tokenizer_name
from qa_common.adapter import QAModel, RawPrediction
from qa_common.data.examples import SquadExample
from qa_common.decoding.generated import WindowAnswer, align_to_context, combine_window_answers
from qa_common.prompts import stop_token_ids

TOKENIZER_DIR, MODEL_DIR, BASE_DIR, ADAPTER_DIR = "tokenizer", "model", "base", "adapter"
SHOTS_FILE = "shots.json"
IGNORED = -100


def load_tokenizer(name: str):
    """The fast tokenizer ``name`` (an alias, hub name or directory) with a pad token (eos when it has none)."""
    path = resolve_tokenizer_name(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.is_fast:
        raise ValueError(f"tokenizer {name!r} is not a fast tokenizer; windows need character offsets")
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer {name!r} has no eos token to end answers with")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # GPT-NeoX's tokenizer may have none
    return tokenizer


@dataclass
class PromptFeatures:
    """Windows of a list of examples as prompts.

    ``prompt_ids[f]`` is window ``f``'s prompt (shots, template, context window, question); ``window_ids[f]`` the
    context tokens of the window, ``window_text[f]`` its text (for constrained decoding); ``example_index[f]`` the
    example it came from; ``targets[f]`` the answer text or the no-answer text (with targets only).
    """

    prompt_ids: list[list[int]]
    window_ids: list[list[int]]
    window_text: list[str]
    example_index: list[int]
    targets: list[str] | None = None

    def __len__(self) -> int:
        return len(self.prompt_ids)


class SFTDataset(torch.utils.data.Dataset):
    """Prompts followed by their target (`` answer``, newline, eos); labels only on the target tokens."""

    def __init__(self, features: PromptFeatures, examples: list[SquadExample], target_ids: list[list[int]],
                 negatives: int):
        self.features, self.examples, self.target_ids, self.negatives = features, examples, target_ids, negatives

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        prompt, target = self.features.prompt_ids[index], self.target_ids[index]
        return {"input_ids": [*prompt, *target], "labels": [IGNORED] * len(prompt) + list(target)}


class RightPaddingCollator:
    """Pads on the right: inputs with the pad id and attention mask 0, labels with -100.

    GPT-NeoX's pad token is its eos token; padding is told apart by position, never by id, so the eos that ends
    every target stays in the loss (masking labels equal to the pad id would teach the model never to stop).
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in items)
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        labels = torch.full((len(items), width), IGNORED, dtype=torch.long)
        for row, item in enumerate(items):
            length = len(item["input_ids"])
            input_ids[row, :length] = torch.tensor(item["input_ids"])
            attention_mask[row, :length] = 1
            labels[row, :length] = torch.tensor(item["labels"])
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def _left_padded(rows: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompts padded on the left, so every row's next token comes at the same position. transformers' Mamba
    zeroes padded positions before the convolution and the scan, so a left-padded row starts from the same zero
    state as an unpadded one."""
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        if row:
            input_ids[index, width - len(row):] = torch.tensor(row)
            attention_mask[index, width - len(row):] = 1
    return input_ids, attention_mask


class MambaQAModel(QAModel):
    adapter_name = "mamba_qa"

    def __init__(self, module, tokenizer, config: MambaQAConfig, shot_pool: Sequence[Shot] = ()):
        self.module = module
        self.tokenizer = tokenizer
        self.config = config
        self.shot_pool = list(shot_pool)
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id
        self.newline_ids = self._ids("\n")
        self.null_answer_ids = self._ids(" " + config.no_answer_text)
        self.null_ids = [*self.null_answer_ids, *self.newline_ids]  # what the model writes for "no answer"
        self.stop_ids = stop_token_ids(tokenizer)
        vocabulary = self.language_model().config.vocab_size
        if len(tokenizer) > vocabulary:
            raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model only {vocabulary}")
        self.is_mamba = self.language_model().config.model_type == "mamba"
        if self.is_mamba:
            bypass = config.variant == "lora" and "x_proj" in config.lora_target_modules
            KernelSwitch.install(self.language_model(), config.kernels, bypass_inner_in_training=bypass)

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    @property
    def is_peft(self) -> bool:
        return hasattr(self.module, "peft_config")

    def language_model(self):
        """The transformers Mamba or other causal LM (under peft: the base with the LoRA layers injected, active)."""
        return self.module.get_base_model() if self.is_peft else self.module

    # -- prompts and features --------------------------------------------------------------------------------

    def prepare(self, examples: Sequence[SquadExample]) -> dict[str, float]:
        """Draw the shot pool from the training data (``shots`` + 1 paragraphs, so that leaving out the paragraph
        being asked about still leaves ``shots``); returns how many synthetic negatives training will add."""
        config = self.config
        limit = config.max_shot_context_tokens

        def fits(context: str) -> bool:
            return len(self._ids(context)) <= limit

        self.shot_pool = shot_pool(examples, config.shots + 1 if config.shots else 0, seed=config.sampling_seed,
                                   no_answer_text=config.no_answer_text, fits=fits)
        negatives = make_random_question_negatives(examples, config.negatives_ratio, config.sampling_seed)
        return {"synthetic_negatives": float(len(negatives)), "prompt_shots": float(config.shots)}

    def _head_ids(self, example: SquadExample, before: str, cache: dict) -> list[int]:
        """Token ids of the solved examples that open ``example``'s prompt (never ``example`` itself or its
        paragraph) and of the template before the context. Questions share one of a few sets of examples (the pool
        less the paragraph asked about), so each set is tokenized once per call."""
        if not (before or self.config.shots):
            return []
        shots = shots_for(example, self.shot_pool, self.config.shots)
        key = (tuple(shot.question_id or shot.question for shot in shots), before)
        if key not in cache:
            cache[key] = self._ids("".join(render_shot(self.config.prompt_template, shot) for shot in shots) + before)
        return cache[key]

    def windows(self, examples: Sequence[SquadExample], *, with_targets: bool) -> PromptFeatures:
        """Prompts of every window of ``examples``; with targets, each window's answer or the no-answer text (the
        first gold answer when it lies whole inside the window)."""
        config = self.config
        contexts = self.tokenizer([example.context for example in examples], add_special_tokens=False,
                                  return_offsets_mapping=True)
        features = PromptFeatures([], [], [], [], [] if with_targets else None)
        heads: dict = {}
        for index, example in enumerate(examples):
            question = self._truncated_question(example.question.strip())
            before, after = split_template(config.prompt_template, question)
            head = self._head_ids(example, before, heads)
            tail = self._ids(after)
            room = config.max_length - len(head) - len(tail)
            if room <= config.doc_stride:
                raise ValueError(f"max_length {config.max_length} leaves {room} tokens for the context of "
                                 f"{example.id!r} after {len(head)} tokens of shots and {len(tail)} of question; "
                                 f"it must leave more than doc_stride ({config.doc_stride})")
            context_ids, offsets = contexts["input_ids"][index], contexts["offset_mapping"][index]
            start = 0
            while True:
                end = min(start + room, len(context_ids))
                window = list(context_ids[start:end])
                features.prompt_ids.append([*head, *window, *tail])
                features.window_ids.append(window)
                features.window_text.append(example.context[offsets[start][0]:offsets[end - 1][1]] if window else "")
                features.example_index.append(index)
                if features.targets is not None:
                    features.targets.append(self._target(example, offsets, start, end))
                if end >= len(context_ids):
                    break
                start = end - config.doc_stride
        return features

    def _truncated_question(self, question: str) -> str:
        encoded = self.tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
        if len(encoded["input_ids"]) <= self.config.max_question_length:
            return question
        return question[: encoded["offset_mapping"][self.config.max_question_length - 1][1]]

    def _target(self, example: SquadExample, offsets, start: int, end: int) -> str:
        if not example.answers or start >= end:
            return self.config.no_answer_text
        answer = example.answers[0]
        inside = offsets[start][0] <= answer.start and answer.end <= offsets[end - 1][1]
        return answer.text if inside else self.config.no_answer_text

    def target_ids(self, text: str) -> list[int]:
        """`` text``, newline, eos: what the model learns to write after the prompt."""
        return [*self._ids(" " + text.strip()), *self.newline_ids, self.eos_token_id]

    def training_dataset(self, examples: Sequence[SquadExample]) -> SFTDataset:
        """Supervised fine-tuning features of ``examples`` plus their synthetic negatives (``negatives_ratio``):
        the loss falls on the answer tokens only."""
        negatives = make_random_question_negatives(examples, self.config.negatives_ratio, self.config.sampling_seed)
        everything = [*examples, *negatives]
        features = self.windows(everything, with_targets=True)
        return SFTDataset(features, everything, [self.target_ids(text) for text in features.targets],
                          negatives=len(negatives))

    def data_collator(self) -> RightPaddingCollator:
        return RightPaddingCollator(self.pad_token_id)

    # -- generation -------------------------------------------------------------------------------------------

    def _allowed_tokens(self, features: PromptFeatures, rows: range, vocabulary: int) -> torch.Tensor:
        """Per row, the tokens an answer may use: those of the window, as it was cut and word by word with a
        leading space (an answer starts after "A:" with a space), and the stop tokens."""
        allowed = torch.zeros((len(rows), vocabulary), dtype=torch.bool)
        for row, feature in enumerate(rows):
            text = features.window_text[feature]
            words = sorted({" " + word for word in text.split()})
            ids = set(features.window_ids[feature])
            if words:
                ids.update(token for encoded in self.tokenizer(words, add_special_tokens=False)["input_ids"]
                           for token in encoded)
            allowed[row, [token for token in ids if token < vocabulary]] = True
        allowed[:, [token for token in self.stop_ids if token < vocabulary]] = True
        return allowed

    def _decode_batch(self, features: PromptFeatures, rows: range) -> list[tuple[list[int], float, float]]:
        """Greedy answers of the windows ``rows`` with the stop rule, their log-probabilities and the no-answer
        text's, all scored by the model itself. One pass over each prompt: its state is copied, one copy writes
        the answer, the other is fed the no-answer text."""
        model = self.language_model()
        device = next(model.parameters()).device
        count = len(rows)
        input_ids, attention_mask = _left_padded([features.prompt_ids[row] for row in rows], self.pad_token_id)
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        if self.is_mamba:
            output = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=True, logits_to_keep=1)
            cache = output.cache_params
        else:
            # Attention models: left padding needs position ids that start at each row's first real token, and the
            # mask grows with every step.
            positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            output = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, use_cache=True,
                           logits_to_keep=1)
            cache = output.past_key_values
            attention_mask = torch.cat([attention_mask, attention_mask])
            next_position = torch.cat([positions[:, -1], positions[:, -1]]) + 1
        logits = output.logits[:, -1].float()
        vocabulary = logits.shape[-1]
        both = torch.arange(count, device=device)
        cache.reorder_cache(torch.cat([both, both]))  # rows count.. follow the no-answer text
        allowed = self._allowed_tokens(features, rows, vocabulary).to(device) if self.config.constrain_to_context \
            else torch.ones((count, vocabulary), dtype=torch.bool, device=device)
        stops = torch.zeros(vocabulary, dtype=torch.bool, device=device)
        stops[[token for token in self.stop_ids if token < vocabulary]] = True
        null = self.null_ids
        generated: list[list[int]] = [[] for _ in range(count)]
        answer_log_probability = torch.zeros(count, dtype=torch.float64)
        null_log_probability = torch.zeros(count, dtype=torch.float64)
        finished = [False] * count
        answer_logits, null_logits = logits, logits
        next_tokens = torch.empty(0, dtype=torch.long)
        for step in range(max(self.config.max_answer_tokens, len(null))):
            if step and self.is_mamba:
                logits = model(input_ids=next_tokens[:, None], cache_params=cache, use_cache=True).logits[:, -1]
            elif step:
                attention_mask = torch.cat([attention_mask, attention_mask.new_ones((2 * count, 1))], dim=1)
                logits = model(input_ids=next_tokens[:, None], past_key_values=cache, attention_mask=attention_mask,
                               position_ids=next_position[:, None], use_cache=True).logits[:, -1]
                next_position = next_position + 1
            if step:
                answer_logits, null_logits = logits[:count].float(), logits[count:].float()
            if step < len(null):
                null_log_probability += torch.log_softmax(null_logits, dim=-1)[:, null[step]].double().cpu()
            chosen = torch.full((count,), self.eos_token_id, dtype=torch.long)
            if step < self.config.max_answer_tokens and not all(finished):
                log_probabilities = torch.log_softmax(answer_logits, dim=-1)
                permitted = allowed & ~stops if step == 0 else allowed.clone()  # never an empty answer
                for row in range(count):
                    # The answer may not be the no-answer text itself: that is what null_log_probability scores.
                    if generated[row] == self.null_answer_ids[:-1] and self.null_answer_ids:
                        permitted[row, self.null_answer_ids[-1]] = False
                picks = log_probabilities.masked_fill(~permitted, -math.inf).argmax(dim=-1)
                picked_log_probabilities = log_probabilities.gather(-1, picks[:, None])[:, 0].double().cpu()
                picks = picks.cpu()
                for row in range(count):
                    if finished[row]:
                        continue
                    token = int(picks[row])
                    generated[row].append(token)
                    answer_log_probability[row] += picked_log_probabilities[row]
                    chosen[row] = token
                    finished[row] = bool(stops[token])
            last_answer_step = all(finished) or step + 1 >= self.config.max_answer_tokens
            if last_answer_step and step + 1 >= len(null):
                break
            null_next = torch.full((count,), null[step] if step < len(null) else self.eos_token_id, dtype=torch.long)
            next_tokens = torch.cat([chosen, null_next]).to(device)
        results = []
        for row in range(count):
            answer, null_total = float(answer_log_probability[row]), float(null_log_probability[row])
            if self.config.score_per_token:
                answer, null_total = answer / max(len(generated[row]), 1), null_total / len(null)
            results.append((generated[row], answer, null_total))
        return results

    @torch.no_grad()
    def predict(
        self, examples: Sequence[SquadExample], *, batch_size: int = 32, progress: bool = False
    ) -> dict[str, RawPrediction]:
        """Every window is answered greedily up to the stop rule (newline or eos); the question's answer is the
        window answer with the highest probability, mapped back to the context, and its no-answer probability
        compares the model's probability of writing the no-answer text ("I don't know") with its answer's
        (``qa_common.decoding.generated.combine_window_answers``). An answer that reads as the no-answer text
        counts as none."""
        if not examples:
            return {}
        was_training = self.module.training
        self.module.eval()
        try:
            features = self.windows(examples, with_targets=False)
            # Similar lengths together: less padding. Each window's result does not depend on its batch.
            order = sorted(range(len(features)), key=lambda index: len(features.prompt_ids[index]))
            decoded: dict[int, tuple[list[int], float, float]] = {}
            for first in range(0, len(order), batch_size):
                rows = order[first : first + batch_size]
                for row, result in zip(rows, self._decode_batch(features, rows)):
                    decoded[row] = result
        finally:
            self.module.train(was_training)
        answers = []
        for window in range(len(features)):
            ids, answer_log_probability, null_log_probability = decoded[window]
            example = examples[features.example_index[window]]
            text = answer_from_generation(self.tokenizer.decode(ids, skip_special_tokens=True),
                                          self.config.no_answer_text)
            answers.append(WindowAnswer(features.example_index[window], align_to_context(text, example.context),
                                        answer_log_probability, null_log_probability))
        return combine_window_answers(examples, answers, n_best=self.config.n_best)

    # -- saving ---------------------------------------------------------------------------------------------

    def saved_figures(self, directory: Path) -> dict[str, float]:
        adapter = Path(directory) / ADAPTER_DIR
        if adapter.is_dir():
            return {"adapter_size_bytes": float(sum(p.stat().st_size for p in adapter.rglob("*") if p.is_file()))}
        return {}

    def save(self, directory: Path) -> None:
        """Tokenizer in ``tokenizer/``, the shot pool in ``shots.json``; a full or merged model in ``model/``;
        LoRA unmerged as the frozen base in ``base/`` and the adapter in ``adapter/`` (safetensors throughout)."""
        directory = Path(directory)
        self.tokenizer.save_pretrained(directory / TOKENIZER_DIR)
        (directory / SHOTS_FILE).write_text(json.dumps([shot.__dict__ for shot in self.shot_pool], indent=1))
        if self.is_peft and self.config.lora_merge:
            merged_lora(self.module).save_pretrained(directory / MODEL_DIR)
        elif self.is_peft:
            self.module.save_pretrained(directory / ADAPTER_DIR)
            _without_hooks(copy.deepcopy(self.module).unload()).save_pretrained(directory / BASE_DIR)
        else:
            self.module.save_pretrained(directory / MODEL_DIR)


def _without_hooks(module: torch.nn.Module) -> torch.nn.Module:
    KernelSwitch.remove(module)
    return module


def merged_lora(module):
    """A copy of a peft Mamba (or other causal LM) with its LoRA adapters merged into the base weights (the original
    is untouched)."""
    return _without_hooks(copy.deepcopy(module).merge_and_unload())


# -------------------------------------------------------------------------------------------------------------
# Building and loading


def check_config(config: MambaQAConfig) -> None:
    """Refuse settings that cannot work, naming them, before any model is built."""
    check_template(config.prompt_template)
    check_kernel_mode(config.kernels)
    for name in ("max_length", "max_answer_tokens", "max_question_length", "max_shot_context_tokens"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
    if config.doc_stride < 0 or config.shots < 0 or config.negatives_ratio < 0:
        raise ValueError("doc_stride, shots and negatives_ratio must be at least 0")
    if not config.no_answer_text.strip() or "\n" in config.no_answer_text:
        raise ValueError(f"no_answer_text must be one line of text, got {config.no_answer_text!r}")
    if config.variant == "lora" and not config.lora_target_modules:
        raise ValueError("lora_target_modules: name at least one module to adapt")
    if config.variant == "lora" and config.model_type == "mamba":
        refused = sorted(set(config.lora_target_modules) - set(LORA_TARGETS))
        if refused or not config.lora_target_modules:
            raise ValueError(f"lora_target_modules {','.join(refused) or '(none)'}: LoRA can adapt "
                             f"{', '.join(LORA_TARGETS)} of a Mamba model (transformers' Mamba reads dt_proj's "
                             "weight directly, so an adapter there would never be used; peft refuses out_proj and "
                             "conv1d, whose weights the fused training kernel reads directly; embeddings and "
                             "lm_head are one tied matrix, which a merge cannot adapt two ways)")


def _random_mamba(config: MambaQAConfig, tokenizer):
    if config.vocab_size and config.vocab_size < len(tokenizer):
        raise ValueError(f"vocab_size {config.vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens")
    if config.model_type != "mamba":
        return _random_causal_lm(config, tokenizer)
    mamba_config = MambaConfig(vocab_size=config.vocab_size or len(tokenizer), hidden_size=config.hidden_size,
                               num_hidden_layers=config.num_hidden_layers, state_size=config.state_size,
                               expand=config.expand, conv_kernel=config.conv_kernel,
                               pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id,
                               eos_token_id=tokenizer.eos_token_id)
    return MambaForCausalLM(mamba_config)


def _random_causal_lm(config: MambaQAConfig, tokenizer):
    """A random ``config.model_type`` causal LM of the configured sizes (its config's generic names: hidden_size,
    num_hidden_layers, num_attention_heads)."""
    sizes = {"hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers}
    if config.num_attention_heads:
        sizes["num_attention_heads"] = config.num_attention_heads
    found = AutoConfig.for_model(config.model_type, vocab_size=config.vocab_size or len(tokenizer),
                                 pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.eos_token_id,
                                 eos_token_id=tokenizer.eos_token_id, **sizes)
    return AutoModelForCausalLM.from_config(found)


def _from_saved(path: str | Path, model_type: str = "mamba"):
    """A ``model_type`` checkpoint by hub name or directory (safetensors only: a pickled checkpoint is never
    loaded)."""
    found = AutoConfig.from_pretrained(path)
    if found.model_type != model_type:
        if model_type == "mamba":
            raise ValueError(f"{path} is a {found.model_type!r} checkpoint; mamba_qa loads Mamba checkpoints "
                             "(model_type 'mamba', e.g. state-spaces/mamba-130m-hf), or set model_type")
        raise ValueError(f"{path} is a {found.model_type!r} checkpoint, not model_type {model_type!r}")
    if model_type == "mamba":
        return MambaForCausalLM.from_pretrained(path, use_safetensors=True)
    return AutoModelForCausalLM.from_pretrained(path, use_safetensors=True)


def _with_lora(module, config: MambaQAConfig):
    from peft import LoraConfig, TaskType, get_peft_model

    lora = LoraConfig(task_type=TaskType.CAUSAL_LM, r=config.lora_rank, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(config.lora_target_modules))
    return get_peft_model(module, lora)


def build_model(config: MambaQAConfig) -> MambaQAModel:
    """A new model for training, as ``config`` says (pretrained or random base; full or LoRA)."""
    check_config(config)
    tokenizer = load_tokenizer(config.tokenizer_name or config.model_name)
    module = _from_saved(config.model_name, config.model_type) if config.from_pretrained \
        else _random_mamba(config, tokenizer)
    if config.variant == "lora":
        module = _with_lora(module, config)
    return MambaQAModel(module, tokenizer, config)


def load_model(directory: Path, config: MambaQAConfig) -> MambaQAModel:
    """A model saved by ``MambaQAModel.save``: the layout on disk says which form it has."""
    directory = Path(directory)
    check_config(config)
    tokenizer = load_tokenizer(str(directory / TOKENIZER_DIR))
    if (directory / ADAPTER_DIR).is_dir():
        from peft import PeftModel

        module = PeftModel.from_pretrained(_from_saved(directory / BASE_DIR, config.model_type),
                                           directory / ADAPTER_DIR)
    else:
        module = _from_saved(directory / MODEL_DIR, config.model_type)
    shots = [Shot(**shot) for shot in json.loads((directory / SHOTS_FILE).read_text())]
    return MambaQAModel(module.eval(), tokenizer, config, shot_pool=shots)
