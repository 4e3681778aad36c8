"""INT8 and 4-bit forms of a T5: PyTorch dynamic quantization (CPU) with a safetensors layout, and the
bitsandbytes configs (CUDA).

Dynamic quantization stores each ``nn.Linear`` weight as int8 with one scale per output row and quantizes
activations on the fly; PyTorch's own state dict of such a model holds packed objects that safetensors cannot
write, so the int8 values, scales and biases are written as plain tensors and packed again on load.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

from qa_common.adapter import HardwareUnavailableError

INT8_WEIGHTS_FILE = "int8_dynamic.safetensors"


def require_cuda(what: str) -> None:
    """Fail with one clear line when ``what`` (a bitsandbytes path) is asked for without a CUDA GPU."""
    if not torch.cuda.is_available():
        raise HardwareUnavailableError(
            f"{what} runs through bitsandbytes on a CUDA GPU, and torch sees none here "
            "(torch.cuda.is_available() is False). On a CPU use variant lora or full, or variant int8 with "
            "int8_backend dynamic."
        )


# What bitsandbytes leaves unquantized (the embedding, layer norms, and T5's feed-forward output ``wo``, which
# transformers always keeps out of quantization) is stored in this dtype instead of float32: half the bytes,
# float32's range (T5's activations overflow float16).
BITSANDBYTES_FLOAT_DTYPE = torch.bfloat16


def bitsandbytes_config(bits: int):
    """``BitsAndBytesConfig`` for LLM.int8() (8) or NF4 with double quantization and bf16 compute (4, QLoRA)."""
    from transformers import BitsAndBytesConfig

    if bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    if bits == 4:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.bfloat16)
    raise ValueError(f"bitsandbytes loads 8 or 4 bits, not {bits}")


def load_bitsandbytes(source, bits: int):
    """The seq2seq model in ``source`` (a directory or hub name) quantized on load by bitsandbytes to ``bits``
    (8: LLM.int8(); 4: NF4), on the first CUDA GPU, its unquantized parts in ``BITSANDBYTES_FLOAT_DTYPE``."""
    from transformers import AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM.from_pretrained(source, device_map={"": 0}, use_safetensors=True,
                                                 quantization_config=bitsandbytes_config(bits),
                                                 dtype=BITSANDBYTES_FLOAT_DTYPE)


def _quantized_linear_class():
    from torch.ao.nn.quantized.dynamic import Linear

    return Linear


def _tied_lm_head(module: torch.nn.Module) -> bool:
    head, shared = getattr(module, "lm_head", None), getattr(module, "shared", None)
    return head is not None and shared is not None and head.weight.data_ptr() == shared.weight.data_ptr()


def quantize_dynamic_int8(module: torch.nn.Module) -> tuple[torch.nn.Module, int]:
    """A CPU copy of ``module`` with every ``nn.Linear`` quantized to int8 (per output row), and their number.

    An ``lm_head`` tied to the input embeddings stays float: quantizing it would store a second copy of the
    embedding matrix.
    """
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    module = module.to("cpu").float().eval()
    skip = {"lm_head"} if _tied_lm_head(module) else set()
    names = {name: per_channel_dynamic_qconfig for name, child in module.named_modules()
             if isinstance(child, torch.nn.Linear) and name not in skip}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        quantized = quantize_dynamic(module, qconfig_spec=names, dtype=torch.qint8)
    return quantized, len(names)


def int8_linear_names(module: torch.nn.Module) -> list[str]:
    linear = _quantized_linear_class()
    return [name for name, child in module.named_modules() if isinstance(child, linear)]


def save_dynamic_int8(module: torch.nn.Module, directory: Path) -> None:
    """Write a dynamically quantized model: its config and one safetensors file of int8 weights, row scales
    and every float tensor (the tied embedding once)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    module.config.save_pretrained(directory)
    tensors: dict[str, torch.Tensor] = {}
    for name, parameter in module.named_parameters():
        tensors[name] = parameter.detach().contiguous()
    for name, buffer in module.named_buffers():
        tensors[name] = buffer.detach().contiguous()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in int8_linear_names(module):
            child = module.get_submodule(name)
            weight, bias = child.weight(), child.bias()
            tensors[f"{name}.weight.int8"] = weight.int_repr().contiguous()
            tensors[f"{name}.weight.scales"] = weight.q_per_channel_scales().float().contiguous()
            tensors[f"{name}.weight.zero_points"] = weight.q_per_channel_zero_points().int().contiguous()
            if bias is not None:
                tensors[f"{name}.bias"] = bias.detach().contiguous()
    save_file(tensors, str(directory / INT8_WEIGHTS_FILE), metadata={"format": "pt", "quantization": "dynamic-int8"})


_QUANTIZED_STATISTICS = (".weight.absmax", ".weight.nested_absmax", ".weight.quant_map", ".weight.nested_quant_map",
                         ".weight.quant_state.", ".weight.scales", ".weight.zero_points", ".SCB", ".weight_format")


def weight_storage(directory: Path) -> dict[str, float]:
    """Bytes of the weights saved under ``directory`` (every ``*.safetensors``, read from the headers only),
    split into the quantized linear weights (int8, bitsandbytes int8 or packed 4-bit, with their scales and
    quantization maps) and everything else, each beside what it would take in float32:

    ``quantized_weight_bytes`` / ``quantized_weight_fp32_bytes`` is the quantized layers' ratio (1/4 for int8,
    about 1/8 for 4-bit); ``weight_bytes`` / ``weight_fp32_bytes`` the whole model's, unquantized parts included.
    """
    from safetensors import safe_open

    sizes = {"quantized_weight_bytes": 0.0, "quantized_weight_fp32_bytes": 0.0, "weight_bytes": 0.0,
             "weight_fp32_bytes": 0.0}
    element_bytes = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
                     "BOOL": 1}
    for path in sorted(Path(directory).rglob("*.safetensors")):
        with safe_open(str(path), "pt") as tensors:
            keys = set(tensors.keys())
            for key in keys:
                piece = tensors.get_slice(key)
                count, dtype = math.prod(piece.get_shape()), piece.get_dtype()
                stored = count * element_bytes[dtype]
                sizes["weight_bytes"] += stored
                packed_4bit = dtype == "U8" and f"{key}.absmax" in keys
                quantized_weight = (dtype == "I8" and (key.endswith(".weight") or key.endswith(".weight.int8"))
                                    or packed_4bit)
                if quantized_weight:
                    values = count * (2 if packed_4bit else 1)
                    sizes["quantized_weight_bytes"] += stored
                    sizes["quantized_weight_fp32_bytes"] += 4 * values
                    sizes["weight_fp32_bytes"] += 4 * values
                elif any(part in key for part in _QUANTIZED_STATISTICS):
                    sizes["quantized_weight_bytes"] += stored
                else:
                    sizes["weight_fp32_bytes"] += 4 * count
    return sizes


def load_dynamic_int8(directory: Path) -> torch.nn.Module:
    """The model ``save_dynamic_int8`` wrote, on CPU, with bit-identical int8 weights and scales."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    tensors = load_file(str(directory / INT8_WEIGHTS_FILE))
    module = AutoModelForSeq2SeqLM.from_config(AutoConfig.from_pretrained(directory))
    quantized = {key.removesuffix(".weight.int8") for key in tensors if key.endswith(".weight.int8")}
    # Float tensors go in before quantizing: a quantized linear's own state dict holds packed parameters.
    float_state = {key: value for key, value in tensors.items() if key.rpartition(".weight.")[0] not in quantized
                   and not (key.endswith(".bias") and key.removesuffix(".bias") in quantized)}
    missing, unexpected = module.load_state_dict(float_state, strict=False)
    expected_missing = {f"{name}.{part}" for name in quantized for part in ("weight", "bias")}
    tied = {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}
    if set(missing) - expected_missing - tied or unexpected:
        raise ValueError(f"{directory / INT8_WEIGHTS_FILE} does not fit its config: missing {missing}, "
                         f"unexpected {unexpected}")
    module, _ = quantize_dynamic_int8(module)
    if set(int8_linear_names(module)) != quantized:
        raise ValueError(f"{directory / INT8_WEIGHTS_FILE} quantizes other layers than this model has")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in quantized:
            weight = torch._make_per_channel_quantized_tensor(
                tensors[f"{name}.weight.int8"], tensors[f"{name}.weight.scales"].double(),
                tensors[f"{name}.weight.zero_points"].long(), 0)
            module.get_submodule(name).set_weight_bias(weight, tensors.get(f"{name}.bias"))
    return module.eval()
