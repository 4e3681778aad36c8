"""Kernels per generated token of a Mamba-130M-sized model at batch 1, and their summed GPU time.

    python scripts/profile_mamba_decode.py [--prompt-length 512] [--vocab-size 50280]

Random weights (the shipped tiny tokenizer, ``--vocab-size`` rows), bf16, transformers' generate on the fused
kernels where mamba-ssm and causal-conv1d are installed (without CUDA graphs). Two generate calls of 2 and 34 new
tokens are profiled with torch.profiler; the difference, divided by 32, is one decoding step: how many GPU kernels
it launches and how long they run in sum. Needs a CUDA GPU.
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-length", type=int, default=512)
    parser.add_argument("--vocab-size", type=int, default=50280)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("profile_mamba_decode: needs a CUDA GPU", file=sys.stderr)
        return 2
    from torch.profiler import ProfilerActivity, profile

    from qa_common.adapter import get_adapter

    adapter = get_adapter("mamba_qa")
    config = adapter.config("mamba-130m", {"from_pretrained": False, "tokenizer_name": "tiny-bpe",
                                           "vocab_size": args.vocab_size})
    lm = adapter.build(config).language_model().cuda().to(torch.bfloat16).eval()
    prompt = torch.randint(1, 4000, (1, args.prompt_length), device="cuda")

    def generate(tokens: int) -> None:
        with torch.no_grad():
            lm.generate(input_ids=prompt, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
        torch.cuda.synchronize()

    generate(4)  # warm-up
    totals = {}
    for tokens in (2, 34):
        with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as profiler:
            generate(tokens)
        kernels = [event for event in profiler.events() if event.device_type == torch.autograd.DeviceType.CUDA]
        totals[tokens] = (len(kernels), sum(event.device_time for event in kernels))
    count = (totals[34][0] - totals[2][0]) / 32
    microseconds = (totals[34][1] - totals[2][1]) / 32
    print(f"per generated token at batch 1: {count:.0f} GPU kernels, {microseconds:.0f} us summed kernel time "
          f"({microseconds / count:.2f} us per kernel)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
