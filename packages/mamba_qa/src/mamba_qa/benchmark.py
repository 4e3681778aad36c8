"""Generation speed of a Mamba language model (the seed study's benchmark_generation_mamba_simple), logged to MLflow.

    python -m mamba_qa.benchmark --preset tiny --prompt-length 64 --generated-tokens 16 --batch-sizes 1,4
    python -m mamba_qa.benchmark --preset mamba-130m --engine mamba_ssm --cuda-graphs true --batch-sizes 1,32

For each batch size: the time to process the prompt (one forward pass that also fills the state), the tokens/s of
the decoding that follows, the tokens/s of the whole generate call, and peak memory. Prompts are random token ids
(seeded); exactly ``generated_tokens`` tokens are generated (greedy, no early stop). Engines:

- ``transformers``: ``MambaForCausalLM.generate``, on the fused kernels where ``kernels`` lets it (CUDA with
  mamba-ssm and causal-conv1d), else on the PyTorch reference path. Mamba's state has a fixed size whatever the
  length, so its cache is already static; transformers' generate loop, run from Python, sets the pace.
- ``mamba_ssm`` (CUDA, mamba-ssm installed): the same weights in mamba_ssm's ``MambaLMHeadModel`` and its own
  ``generate``; ``cuda_graphs`` captures the one-token decoding step as a CUDA graph (mamba_ssm's ``cg=True``).

Timings are medians of ``repeats`` runs after a warm-up run, wall-clock, the device synchronised around each.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from qa_common.config import build_config, config_to_dict


@dataclass
class GenerationBenchmark:
    """Settings of one benchmark run (``batch_sizes``: comma-separated on the command line)."""

    prompt_length: int = 512
    generated_tokens: int = 64
    batch_sizes: tuple[int, ...] = (1,)
    repeats: int = 3
    engine: Literal["transformers", "mamba_ssm"] = "transformers"
    cuda_graphs: bool = False
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    seed: int = 0
    cpu_threads: int = 0  # torch's intra-op threads; 0 keeps torch's default


def check_settings(settings: GenerationBenchmark, device: torch.device) -> None:
    """Refuse settings that cannot run here, naming them."""
    if settings.cpu_threads < 0:
        raise ValueError(f"cpu_threads must be 0 (torch's default) or more, got {settings.cpu_threads}")
    for name in ("prompt_length", "generated_tokens", "repeats"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(settings, name)}")
    if not settings.batch_sizes or min(settings.batch_sizes) < 1:
        raise ValueError(f"batch_sizes must be whole numbers of at least 1, got {settings.batch_sizes}")
    if settings.engine == "mamba_ssm" and device.type != "cuda":
        raise ValueError("engine mamba_ssm runs on CUDA only; use engine transformers on the CPU")
    if settings.cuda_graphs and settings.engine != "mamba_ssm":
        raise ValueError("cuda_graphs needs engine mamba_ssm (transformers' generate has no CUDA-graph Mamba step)")


def torch_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(run: Callable[[], Any], repeats: int, device: torch.device) -> float:
    run()  # warm-up: allocations, kernel selection, graph capture
    _synchronise(device)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        _synchronise(device)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def to_mamba_ssm(model, dtype: torch.dtype):
    """The weights of a transformers ``MambaForCausalLM`` in mamba_ssm's ``MambaLMHeadModel`` (CUDA); the vocabulary
    is padded to a multiple of 8 as mamba_ssm does, with zero rows."""
    from mamba_ssm.models.config_mamba import MambaConfig as SsmConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    source = model.config
    ssm_cfg = {"layer": "Mamba1", "d_state": source.state_size, "d_conv": source.conv_kernel,
               "expand": source.expand, "dt_rank": int(source.time_step_rank), "conv_bias": source.use_conv_bias,
               "bias": source.use_bias}
    config = SsmConfig(d_model=source.hidden_size, d_intermediate=0, n_layer=source.num_hidden_layers,
                       vocab_size=source.vocab_size, ssm_cfg=ssm_cfg, rms_norm=True,
                       residual_in_fp32=source.residual_in_fp32, fused_add_norm=True, pad_vocab_size_multiple=8,
                       tie_embeddings=source.tie_word_embeddings)
    target = MambaLMHeadModel(config, device="cuda", dtype=torch.float32)
    state = {}
    for key, value in model.state_dict().items():
        key = key.replace("backbone.embeddings.", "backbone.embedding.")
        if key in ("backbone.embedding.weight", "lm_head.weight"):
            padded = target.state_dict()[key].shape[0]
            value = torch.cat([value.float(), value.new_zeros(padded - value.shape[0], value.shape[1]).float()])
        state[key] = value.float()
    target.load_state_dict(state, strict=True)
    return target.to(dtype=dtype).eval()


def _transformers_prefill(model, prompt: torch.Tensor):
    return model(input_ids=prompt, attention_mask=torch.ones_like(prompt), use_cache=True, logits_to_keep=1)


def _transformers_generate(model, prompt: torch.Tensor, new: int) -> None:
    out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
                         min_new_tokens=new, do_sample=False, pad_token_id=model.config.pad_token_id)
    if out.shape[1] != prompt.shape[1] + new:
        raise RuntimeError(f"generate wrote {out.shape[1] - prompt.shape[1]} tokens, not {new}")


def _mamba_ssm_prefill(model, prompt: torch.Tensor, max_length: int):
    from mamba_ssm.utils.generation import InferenceParams

    params = InferenceParams(max_seqlen=max_length, max_batch_size=prompt.shape[0])
    return model(prompt, inference_params=params, num_last_tokens=1)


def _mamba_ssm_generate(model, prompt: torch.Tensor, max_length: int, cuda_graphs: bool, vocabulary: int) -> None:
    out = model.generate(prompt, max_length=max_length, cg=cuda_graphs, top_k=1, vocab_size=vocabulary)
    if out.shape[1] != max_length:
        raise RuntimeError(f"mamba_ssm's generate wrote {out.shape[1] - prompt.shape[1]} tokens, "
                           f"not {max_length - prompt.shape[1]}")


def benchmark_generation(model, settings: GenerationBenchmark) -> dict[str, float]:
    """Figures for each batch size of ``settings`` (keys suffixed ``_b<size>``) for a transformers
    ``MambaForCausalLM`` (on the device and dtype it should run in); see the module docstring."""
    device = next(model.parameters()).device
    check_settings(settings, device)
    vocabulary = model.config.vocab_size
    length, new = settings.prompt_length, settings.generated_tokens
    engine = to_mamba_ssm(model, next(model.parameters()).dtype) if settings.engine == "mamba_ssm" else model
    generator = torch.Generator().manual_seed(settings.seed)
    if settings.cpu_threads:
        torch.set_num_threads(settings.cpu_threads)
    figures: dict[str, float] = {}
    for batch in settings.batch_sizes:
        prompt = torch.randint(1, vocabulary, (batch, length), generator=generator).to(device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            if settings.engine == "mamba_ssm":
                prefill = functools.partial(_mamba_ssm_prefill, engine, prompt, length + new)
                generate = functools.partial(_mamba_ssm_generate, engine, prompt, length + new, settings.cuda_graphs,
                                             vocabulary)
            else:
                prefill = functools.partial(_transformers_prefill, engine, prompt)
                generate = functools.partial(_transformers_generate, engine, prompt, new)
            prefill_s = _median_seconds(prefill, settings.repeats, device)
            generate_s = _median_seconds(generate, settings.repeats, device)
        # The prompt's forward pass also yields the first new token; the others come one decoding step each.
        decode_s = max(generate_s - prefill_s, 1e-9)
        figures.update({
            f"prompt_processing_ms_b{batch}": prefill_s * 1000,
            f"prompt_tokens_per_s_b{batch}": batch * length / prefill_s,
            f"decode_tokens_per_s_b{batch}": batch * (new - 1) / decode_s if new > 1 else 0.0,
            f"generate_tokens_per_s_b{batch}": batch * new / generate_s,
            f"ms_per_decoding_step_b{batch}": decode_s * 1000 / max(new - 1, 1),
        })
        if device.type == "cuda":
            figures[f"peak_memory_mb_b{batch}"] = torch.cuda.max_memory_allocated(device) / 2**20
    if device.type != "cuda":
        # The process's peak resident memory: an upper bound (it includes Python, torch and the model).
        figures["peak_process_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def run_benchmark(preset: str | None, model_overrides: dict[str, Any], settings: GenerationBenchmark, *,
                  experiment: str | None, device: str | None = None) -> dict[str, float]:
    """Build ``preset`` (with ``model_overrides``) through the adapter, benchmark its language model and, with an
    ``experiment``, log settings and figures as one MLflow run (tagged ``squad_qa.kind=generation-benchmark``)."""
    from mamba_qa.adapter import MambaAdapter

    adapter = MambaAdapter()
    config = adapter.config(preset, model_overrides)
    torch.manual_seed(settings.seed)
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    check_settings(settings, target)
    qa_model = adapter.build(config)
    model = qa_model.language_model().to(device=target, dtype=torch_dtype(settings.dtype, target)).eval()
    figures = benchmark_generation(model, settings)
    switch = getattr(model, "_squad_qa_kernel_switch", None)
    path = "mamba_ssm" if settings.engine == "mamba_ssm" else (
        "fused kernels" if switch and switch.last_choice and switch.last_choice.fused else "reference")
    if experiment:
        from qa_common.jobs.benchmark import hardware_description
        from qa_common.tracking import runs

        tags = {"adapter": "mamba_qa", "preset": preset or adapter.default_preset, "squad_qa.kind":
                "generation-benchmark", "hardware": hardware_description(), "code_path": path}
        with runs.job_run(experiment, run_name=f"generation-{preset or adapter.default_preset}", resume_run_id=None,
                          tags=tags, system_metrics=False):
            runs.log_params({**{f"bench.{key}": value for key, value in config_to_dict(settings).items()},
                             **{f"model.{key}": value for key, value in config_to_dict(config).items()},
                             "parameters_total": sum(p.numel() for p in model.parameters())}, resuming=False)
            runs.log_metrics(figures)
    return {**figures, "code_path": path}


def main(argv: Sequence[str] | None = None) -> int:
    from mamba_qa.config import MambaQAConfig
    from qa_common.cli import UsageError, parse_key_values
    from qa_common.config import ConfigError, split_overrides

    parser = argparse.ArgumentParser(prog="python -m mamba_qa.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="a mamba_qa preset (default mamba-130m)")
    parser.add_argument("--experiment", default="squad-qa-generation",
                        help="MLflow experiment to log to; empty: do not log")
    parser.add_argument("--device", default=None, help="cuda or cpu (default: cuda when there is one)")
    args, extra = parser.parse_known_args(argv)
    try:
        values = parse_key_values(list(extra))
        bench_values, model_values = split_overrides(GenerationBenchmark, values)
        known = {field.name for field in dataclasses.fields(MambaQAConfig)}
        unknown = sorted(set(model_values) - known)
        if unknown:
            raise UsageError(f"unknown setting(s) {', '.join(unknown)}; benchmark settings: "
                             f"{', '.join(field.name for field in dataclasses.fields(GenerationBenchmark))}; "
                             f"model settings: {', '.join(sorted(known))}")
        settings = build_config(GenerationBenchmark, bench_values)
        figures = run_benchmark(args.preset, model_values, settings, experiment=args.experiment or None,
                                device=args.device)
    except (UsageError, ConfigError, ValueError, KeyError, RuntimeError) as error:
        print(f"mamba_qa benchmark: error: {error}", file=sys.stderr)
        return 2
    width = max(len(key) for key in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value:,.2f}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
