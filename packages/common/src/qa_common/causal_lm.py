"""Any transformers causal language model (Mamba, RWKV, GPT-2, GPT-Neo, Pythia, ...) as the prompting study uses
it: loading it from a hub name, a checkpoint directory, a LoRA adapter directory or a squad-qa model directory,
greedy generation under the stop rule, and the timing of prompt processing and decoding. Plain PyTorch: no
MLflow, no files written.

The timing is the one definition every figure of the study uses (the job, lm-eval's runs and
``scripts/gpu_prompt_speed.py``): batch 1, wall-clock, the device synchronised; *prompt processing* is the time
from the call until the first new token is known (one forward pass over the prompt, which also yields that
token), *decoding* the time of the remaining tokens, one forward step each; decode tokens/s is their number
divided by that time.
"""

from __future__ import annotations

import functools
import importlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

SQUAD_QA_MODEL_INFO = "squad_qa.json"  # a directory saved by the shared training job
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class CausalLM:
    """A loaded causal LM: the module (in eval mode), its fast tokenizer (with a pad token), and where it came from.

    ``source`` says how it was found: ``hub``, ``checkpoint``, ``lora-adapter`` or ``squad-qa`` (a model saved by
    the training job; ``lora-adapter`` also covers such a model saved unmerged).
    """

    module: torch.nn.Module
    tokenizer: object
    name: str
    source: str

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def model_type(self) -> str:
        config = getattr(self.module, "config", None)
        return getattr(config, "model_type", "") or ""

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.module.parameters())


def torch_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """``auto`` (bf16 on a CUDA GPU that has it, else fp32), ``fp32``, ``bf16`` or ``fp16``."""
    device = torch.device(device)
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if name not in DTYPES:
        raise ValueError(f"dtype must be auto, {', '.join(DTYPES)}; got {name!r}")
    return DTYPES[name]


def load_tokenizer(path: str | Path):
    """The fast tokenizer at ``path`` (hub name or directory), with eos as pad token when it has none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


_KINDS = "a checkpoint directory has config.json, a LoRA adapter adapter_config.json, a squad-qa model squad_qa.json"
_NO_SUCH_DIRECTORY = f"no such model directory ({_KINDS})"
_NOT_A_MODEL_DIRECTORY = f"not a model directory ({_KINDS})"


def _looks_like_a_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or Path(name.split("/", 1)[0]).exists()


def _from_pretrained(path: str | Path, dtype: torch.dtype):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)


def _with_adapter(base, adapter: Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(base, str(adapter))


def load_causal_lm(name: str | Path, *, dtype: str = "auto", device: str | None = None,
                   tokenizer: str | None = None) -> CausalLM:
    """Load ``name``: a squad-qa model directory (``tokenizer/`` with ``model/``, or ``base/`` + ``adapter/``), a
    peft LoRA adapter directory (its ``adapter_config.json`` names the base), a transformers checkpoint
    directory, or a hub name (needs the internet, or the model in the local cache). ``tokenizer`` overrides where
    the tokenizer comes from. Raises ValueError with one line naming ``name`` when it cannot be loaded."""
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    torch_type = torch_dtype(dtype, target)
    text = str(name)
    local = Path(text).expanduser()
    try:
        if local.is_dir() and (local / SQUAD_QA_MODEL_INFO).is_file():
            source, tokenizer_path = "squad-qa", tokenizer or local / "tokenizer"
            if (local / "adapter").is_dir():
                module, source = _with_adapter(_from_pretrained(local / "base", torch_type), local / "adapter"), \
                    "lora-adapter"
            else:
                module = _from_pretrained(local / "model", torch_type)
        elif local.is_dir() and (local / "adapter_config.json").is_file():
            base = json.loads((local / "adapter_config.json").read_text()).get("base_model_name_or_path")
            if not base:
                raise OSError(f"{local}/adapter_config.json names no base model (base_model_name_or_path)")
            has_tokenizer = any((local / file).is_file() for file in ("tokenizer.json", "tokenizer_config.json"))
            source, tokenizer_path = "lora-adapter", tokenizer or (local if has_tokenizer else base)
            module = _with_adapter(_from_pretrained(base, torch_type), local)
        elif local.is_dir() and (local / "config.json").is_file():
            source, tokenizer_path = "checkpoint", tokenizer or local
            module = _from_pretrained(local, torch_type)
        elif local.exists() or _looks_like_a_path(text):
            raise OSError(_NOT_A_MODEL_DIRECTORY if local.exists() else _NO_SUCH_DIRECTORY)
        else:
            source, tokenizer_path = "hub", tokenizer or text
            module = _from_pretrained(text, torch_type)
        loaded_tokenizer = load_tokenizer(tokenizer_path)
    except (OSError, KeyError, ValueError) as error:  # a hub name not there or offline; not a causal LM
        first = " ".join(str(error).split())[:300]
        raise ValueError(f"model {text!r} cannot be loaded: {first}") from error
    if len(loaded_tokenizer) > _vocabulary(module):
        raise ValueError(f"model {text!r}: its tokenizer has {len(loaded_tokenizer)} tokens but the model only "
                         f"{_vocabulary(module)}")
    module = module.to(target).eval()
    return CausalLM(module=module, tokenizer=loaded_tokenizer, name=text, source=source)


def check_loadable(name: str | Path) -> str:
    """The ``model_type`` of ``name`` read from its config alone (cheap: no weights), so a study can refuse a model
    that is not there before it starts; raises ValueError as ``load_causal_lm`` does."""
    from transformers import AutoConfig

    text = str(name)
    local = Path(text).expanduser()
    if local.is_dir() and (local / SQUAD_QA_MODEL_INFO).is_file():
        where = local / ("base" if (local / "adapter").is_dir() else "model")
    elif local.is_dir() and (local / "adapter_config.json").is_file():
        where = json.loads((local / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""
    elif local.is_dir() and (local / "config.json").is_file():
        where = local
    elif local.exists() or _looks_like_a_path(text):
        raise ValueError(f"model {text!r}: {_NOT_A_MODEL_DIRECTORY if local.exists() else _NO_SUCH_DIRECTORY}")
    else:
        where = text
    try:
        config = AutoConfig.from_pretrained(str(where))
    except (OSError, KeyError, ValueError) as error:
        first = " ".join(str(error).split())[:300]
        raise ValueError(f"model {text!r} cannot be loaded: {first}") from error
    return config.model_type


def _vocabulary(module) -> int:
    return module.get_input_embeddings().weight.shape[0]


# ---------------------------------------------------------------------------------------------------------------
# Generation and its timing


@dataclass(frozen=True)
class TimedGeneration:
    """Greedy tokens after one prompt and how long they took.

    ``token_ids`` are the new tokens, the stop token included when one ended the answer; ``prompt_seconds`` the
    time until the first of them was known; ``decode_seconds`` the time of the others.
    """

    token_ids: tuple[int, ...]
    prompt_tokens: int
    prompt_seconds: float
    decode_seconds: float
    stopped: bool

    @property
    def decode_tokens(self) -> int:
        return max(len(self.token_ids) - 1, 0)


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _FirstTokenClock:
    """A generate() streamer that notes when the first new token is known (its first call is the prompt)."""

    def __init__(self):
        self.calls = 0
        self.first_token_at: float | None = None

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2:
            value.cpu()  # waits for the device
            self.first_token_at = time.perf_counter()

    def end(self) -> None:
        pass


@torch.inference_mode()
def greedy_generate(model: torch.nn.Module, prompt_ids: Sequence[int], *, stop_ids: Sequence[int],
                    max_new_tokens: int, min_new_tokens: int = 0, pad_token_id: int | None = None) -> TimedGeneration:
    """Greedy generation (batch 1) after ``prompt_ids`` until a token of ``stop_ids`` is written (it is kept), or
    ``max_new_tokens``; no stop before ``min_new_tokens`` (the speed benchmark fixes the length this way).

    Uses the model's own ``generate`` (its cache: key/value for attention models, the recurrent state for Mamba
    and RWKV) with no sampling and one beam. The eos of the model's generation config also ends generation
    (generate always honours it; the prompting study's stop rule includes eos anyway).
    """
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if not prompt_ids:
        raise ValueError("the prompt is empty")
    device = next(model.parameters()).device
    input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=device)
    clock = _FirstTokenClock()
    stops = sorted(set(int(token) for token in stop_ids))
    _synchronise(device)
    began = time.perf_counter()
    output = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), do_sample=False,
                            num_beams=1, max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens,
                            eos_token_id=stops or None, pad_token_id=pad_token_id if pad_token_id is not None
                            else (stops[0] if stops else 0), streamer=clock)
    _synchronise(device)
    ended = time.perf_counter()
    new = [int(token) for token in output[0, input_ids.shape[1]:].tolist()]
    first = clock.first_token_at or ended
    stop_set = set(stops)
    cut = next((index + 1 for index, token in enumerate(new) if token in stop_set and index + 1 >= min_new_tokens),
               len(new))
    return TimedGeneration(token_ids=tuple(new[:cut]), prompt_tokens=input_ids.shape[1],
                           prompt_seconds=first - began, decode_seconds=ended - first,
                           stopped=cut > 0 and new[cut - 1] in stop_set)


@functools.cache
def _imports(module: str) -> bool:
    """Whether ``module`` imports here (a CUDA extension built for another torch fails at import, not at lookup)."""
    try:
        importlib.import_module(module)
    except Exception:
        return False
    return True


def kernel_path(model: torch.nn.Module) -> str:
    """Which code path a forward pass of ``model`` takes where it is now, in words (logged with speed figures).

    Read from what transformers bound, not guessed from a name: Mamba's fused kernels (mamba-ssm and
    causal-conv1d, CUDA) or its PyTorch scan; RWKV's wkv CUDA kernel (transformers 5 fetches it from the hub
    through the ``kernels`` package) or its PyTorch loop; attention models' attention implementation.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    on_cuda = next(base.parameters()).device.type == "cuda"
    if config.model_type == "mamba":
        importable = all(_imports(module) for module in ("mamba_ssm.ops.selective_scan_interface", "causal_conv1d"))
        return "mamba fused kernels (mamba_ssm, causal_conv1d)" if on_cuda and importable else \
            "mamba reference (PyTorch selective scan)"
    if config.model_type == "rwkv":
        rwkv = importlib.import_module("transformers.models.rwkv.modeling_rwkv")
        loaded = getattr(rwkv, "rwkv_cuda_kernel", None) is not None
        return "rwkv wkv CUDA kernel (prompt; one-token steps use the PyTorch loop)" if on_cuda and loaded else \
            "rwkv reference (PyTorch wkv loop)"
    return f"attention: {getattr(config, '_attn_implementation', None) or 'default'}"
