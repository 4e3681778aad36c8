"""Training throughput (features/s) of a bert-base-sized QA reader under several training set-ups, as JSON.

    python scripts/bench_train.py --out train.json                       # GPU: bert-base size, 384, batch 32
    python scripts/bench_train.py --preset tiny --sequence-length 64 --steps 3 --warmup 1 --batch-size 4 \\
        --variants trainer,loop+pure   # a CPU smoke run

Each variant trains the same randomly initialised model (``bert_qa`` preset ``random-bert-base`` unless
``--preset``) on the same synthetic windows of exactly ``--sequence-length`` tokens (the issue's setting:
every window full) with random answer positions, for ``--warmup`` steps and then ``--steps`` timed steps; the
figure is timed features / timed seconds (the device synchronised at both ends). Variants are names joined by
``+``:

- ``trainer``: HF Trainer with the shared job's settings mapping (`qa_common.jobs.train`), bf16 autocast;
  ``loop``: a plain PyTorch loop (autocast bf16, zero_grad(set_to_none), no logging), to see Trainer's overhead;
- ``fused``: AdamW's fused CUDA kernel (``adamw_torch_fused``); ``foreach``: ``adamw_torch``; neither: Trainer's
  own default optimizer (the loop: for-each AdamW);
- ``compile``: torch.compile of the model (Trainer's ``torch_compile``; the loop compiles the module, or with
  ``packedtrain`` its layers, as the job does);
- ``pure``: the weights themselves in bf16, no autocast (AdamW then updates bf16 weights: fast, but updates
  below bf16's resolution are lost; a speed figure, not a recommendation);
- ``ckpt``: gradient checkpointing (memory for speed);
- ``workers``: 4 dataloader workers (default 0);
- ``nomask``: full windows are passed without an attention mask and the model uses `qa_common.attention`'s SDPA,
  which then needs no mask even when traced, so torch.compile keeps SDPA's flash kernel;
- ``packed`` (loop only): train `bert_qa.fused.PackedBertQA` over the model (one fused Q/K/V projection, SDPA
  flash, the config's dropout), the span loss computed as transformers' BertForQuestionAnswering does;
- ``packedtrain``: train `bert_qa.fused.PackedSpanTrainer`, what the job trains under bert_qa's
  ``packed_training``: each padded batch's real tokens end to end (varlen flash attention on CUDA), so on real
  windows (``--data``) no projection or attention pays for padding;
- ``bN``: batch N instead of ``--batch-size`` (e.g. ``b64``).

``--data FILE`` trains on that SQuAD file's real labelled windows at ``--sequence-length`` (max length, the
preset's stride) instead, padded per batch by the job's collator, as the shared job trains: features/s there
counts real windows of all lengths.

A variant that fails is recorded with its error and the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_VARIANTS = "trainer,trainer+compile,loop+fused,loop+fused+compile,loop+pure+fused,loop+pure+fused+compile"


class SyntheticWindows(torch.utils.data.Dataset):
    """``count`` full windows of random tokens with random answer positions (fixed by ``seed``)."""

    def __init__(self, count: int, length: int, vocabulary: int, seed: int = 0, with_mask: bool = True):
        self.with_mask = with_mask
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(1000, vocabulary, (count, length), generator=generator)
        starts = torch.randint(1, length - 31, (count,), generator=generator)
        self.start_positions = starts
        self.end_positions = starts + torch.randint(0, 30, (count,), generator=generator)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        ids = self.input_ids[index]
        item = {"input_ids": ids, "token_type_ids": torch.zeros_like(ids),
                "start_positions": self.start_positions[index], "end_positions": self.end_positions[index]}
        if self.with_mask:
            item["attention_mask"] = torch.ones_like(ids)
        return item


def _synchronise() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_model(preset: str, overrides: dict, sequence_length: int, fit_stride: bool = False):
    """The bert_qa reader of ``preset``; with ``fit_stride`` a stride that fits the length when the preset's does
    not (a toy --sequence-length for real windows)."""
    from qa_common.adapter import get_adapter

    adapter = get_adapter("bert_qa")
    config = adapter.config(preset, {**overrides, "max_length": max(sequence_length, 64)})
    room = config.max_length - config.max_question_length - 3
    if fit_stride and config.doc_stride >= room:
        config.doc_stride = room // 2
    return adapter.build(config)


def run_trainer(module, dataset, parts: set[str], args, device: str, collator=None) -> dict:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from qa_common.jobs.train import JobConfig, _precision_flags, _speed_arguments

    job = JobConfig(optim="adamw_torch_fused" if "fused" in parts else "auto", torch_compile="compile" in parts,
                    gradient_checkpointing="ckpt" in parts, dataloader_workers=4 if "workers" in parts else 0,
                    precision="fp32" if "pure" in parts or device == "cpu" else "bf16")
    if "pure" in parts:
        module.to(torch.bfloat16)
    if "packedtrain" in parts:  # as the job trains under packed_training (and compiles under torch_compile)
        from bert_qa.fused import PackedSpanTrainer

        module = PackedSpanTrainer(module.to(device))
        if job.torch_compile:
            module.compile_layers()
    speed = _speed_arguments(job, compile_module="packedtrain" not in parts)
    if "foreach" in parts:
        speed["optim"] = "adamw_torch"
    elif "fused" not in parts:
        del speed["optim"]  # transformers' own default (adamw_torch_fused in 5.x): the baseline a user gets
    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, arguments, state, control, **kwargs):
            if state.global_step in (args.warmup, args.warmup + args.steps):
                _synchronise()
                marks[str(state.global_step)] = time.perf_counter()

    arguments = TrainingArguments(
        output_dir=str(Path(args.scratch) / "trainer"), max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.batch_size, learning_rate=5e-5, logging_steps=10_000,
        save_strategy="no", report_to="none", remove_unused_columns=False, use_cpu=device == "cpu",
        **_precision_flags(job.precision), **speed)
    trainer = Trainer(model=module, args=arguments, train_dataset=dataset, data_collator=collator, callbacks=[Clock()])
    trainer.train()
    seconds = marks[str(args.warmup + args.steps)] - marks[str(args.warmup)]
    return {"features_per_s": args.steps * args.batch_size / seconds, "optim": str(arguments.optim.value),
            "bf16_autocast": bool(arguments.bf16), **{k: str(v) for k, v in speed.items() if k != "optim"}}


def run_loop(module, dataset, parts: set[str], args, device: str, collator=None) -> dict:
    module.to(device).train()
    if "pure" in parts:
        module.to(torch.bfloat16)
    if "ckpt" in parts:
        module.gradient_checkpointing_enable()
    model = module
    if "packed" in parts:
        from bert_qa.fused import PackedBertQA

        model = PackedBertQA(module).train()
    if "packedtrain" in parts:
        from bert_qa.fused import PackedSpanTrainer

        model = PackedSpanTrainer(module).train()
    fused = "fused" in parts and device == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01, fused=fused or None,
                                  foreach=None if fused else True)
    forward = model
    if "compile" in parts and "packedtrain" in parts:
        model.compile_layers()  # what the job does under torch_compile: the layers, not the packing around them
    elif "compile" in parts:
        forward = torch.compile(model)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=4 if "workers" in parts else 0, pin_memory=device == "cuda",
                                         collate_fn=collator)
    autocast = device == "cuda" and "pure" not in parts

    def batches():
        while True:
            yield from loader

    stream = batches()
    began = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            _synchronise()
            began = time.perf_counter()
        batch = {key: value.to(device, non_blocking=True) for key, value in next(stream).items()}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=autocast):
            if "packed" in parts:
                starts, ends = batch.pop("start_positions"), batch.pop("end_positions")
                output = forward(**batch)
                loss = (torch.nn.functional.cross_entropy(output.start_logits.float(), starts)
                        + torch.nn.functional.cross_entropy(output.end_logits.float(), ends)) / 2
            else:
                loss = forward(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    _synchronise()
    seconds = time.perf_counter() - began
    return {"features_per_s": args.steps * args.batch_size / seconds, "optim": "adamw fused" if fused else "adamw",
            "bf16_autocast": autocast, "final_loss": float(loss.detach().float())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--preset", default="random-bert-base")
    parser.add_argument("--overrides", default="{}", help="JSON of bert_qa config keys, e.g. layer sizes")
    parser.add_argument("--sequence-length", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--scratch", default="/tmp/bench_train")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--peak-tflops", type=float, default=0.0)
    parser.add_argument("--data", default=None, help="train on this SQuAD file's real windows (see above)")
    args = parser.parse_args(argv)
    from qa_common.jobs.speed import encoder_flops_per_sequence, hardware_description, peak_tflops

    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = peak_tflops(hardware_description(), args.peak_tflops or None)
    results = {"hardware": hardware_description(), "torch": torch.__version__, "sequence_length": args.sequence_length,
               "batch_size": args.batch_size, "steps": args.steps, "warmup": args.warmup, "preset": args.preset,
               "command": shlex.join([os.path.basename(sys.executable), *sys.argv]),
               "commit": os.environ.get("SQUAD_QA_COMMIT", ""), "variants": {}}
    import transformers

    results["transformers"] = transformers.__version__
    batch_size = args.batch_size
    for name in [v.strip() for v in args.variants.split(",") if v.strip()]:
        parts = set(name.split("+"))
        sizes = [int(part[1:]) for part in parts if part[:1] == "b" and part[1:].isdigit()]
        args.batch_size = sizes[0] if sizes else batch_size
        torch.manual_seed(0)
        model = build_model(args.preset, json.loads(args.overrides), args.sequence_length, fit_stride=bool(args.data))
        if args.data:
            results["doc_stride"] = model.config.doc_stride
        module, collator = model.module, None
        config = module.config
        flops = 3 * encoder_flops_per_sequence(config.hidden_size, config.num_hidden_layers,
                                               config.intermediate_size, args.sequence_length)
        if args.data:
            from qa_common.data.readers import load_squad

            dataset, collator = model.training_dataset(load_squad(args.data).examples), model.data_collator()
            lengths = dataset.features.lengths()
            results.update(data=args.data, windows=len(dataset), mean_window_tokens=float(lengths.mean()))
            flops = 3 * float(np.mean([encoder_flops_per_sequence(
                config.hidden_size, config.num_hidden_layers, config.intermediate_size, int(n)) for n in lengths]))
        else:
            dataset = SyntheticWindows(args.batch_size * (args.warmup + args.steps), args.sequence_length,
                                       model.tokenizer.vocab_size, with_mask="nomask" not in parts)
        if "nomask" in parts:
            from qa_common.attention import use_unpadded_sdpa

            use_unpadded_sdpa(module)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        try:
            runner = run_trainer if "trainer" in parts else run_loop
            figures = {**runner(module, dataset, parts, args, device, collator), "batch_size": args.batch_size}
            if peak:
                figures["ceiling_share"] = figures["features_per_s"] * flops / (peak * 1e12)
            if torch.cuda.is_available():
                figures["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
        except Exception as error:  # noqa: BLE001 - one variant failing leaves the others' figures
            figures = {"failed": f"{type(error).__name__}: {str(error)[:400]}"}
        results["variants"][name] = figures
        results["train_flops_per_feature"] = flops
        results["peak_tflops"] = peak
        print(json.dumps({name: figures}), flush=True)
        if args.out:  # after every variant: a time limit that stops the run keeps what was measured
            args.out.write_text(json.dumps(results, indent=1))
        del module, model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        try:
            import torch._dynamo as dynamo

            dynamo.reset()  # compiled graphs of the previous variant's module
        except Exception:  # noqa: BLE001 - only a cleanup
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
