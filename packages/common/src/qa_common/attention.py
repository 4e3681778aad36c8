"""SDPA without a mask for encoder batches that have no padding, also under torch.compile and CUDA graphs.

transformers (5.x) skips the attention mask of a batch without padding only when it is not traced: under dynamo
(torch.compile) or a CUDA-graph capture it always builds a full boolean mask, and with a mask PyTorch's SDPA
cannot use its flash kernel. `use_unpadded_sdpa` switches a transformers encoder to the same SDPA attention,
registered under another name whose mask builder returns no mask when the caller passed none
(``attention_mask=None``: no padding, which `qa_common.extractive.TorchRunner` decides on the host) and builds
transformers' usual SDPA mask otherwise. Decoders (causal masks) are left alone.
"""

from __future__ import annotations

from typing import Any

NAME = "sdpa_unpadded"


def _mask(*args: Any, attention_mask=None, mask_function=None, **kwargs: Any):
    from transformers.masking_utils import bidirectional_mask_function, sdpa_mask

    if attention_mask is None and mask_function is bidirectional_mask_function:
        return None  # every token attends to every token: SDPA without a mask (flash)
    return sdpa_mask(*args, attention_mask=attention_mask, mask_function=mask_function, **kwargs)


def use_unpadded_sdpa(module: Any) -> bool:
    """Switch ``module`` (a transformers encoder on SDPA) to `NAME`; False, changing nothing, for any other."""
    config = getattr(module, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) not in ("sdpa", NAME) \
            or getattr(config, "is_decoder", False) or getattr(config, "is_encoder_decoder", False):
        return False
    try:
        from transformers import AttentionInterface, AttentionMaskInterface
        from transformers.integrations.sdpa_attention import sdpa_attention_forward
    except ImportError:  # a transformers without pluggable attention
        return False
    AttentionInterface.register(NAME, sdpa_attention_forward)
    AttentionMaskInterface.register(NAME, _mask)
    config._attn_implementation = NAME
    return True
