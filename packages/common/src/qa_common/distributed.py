"""Several processes of one training job (torchrun, accelerate launch): which process this is, and the few
steps where they wait for each other. In a single process every function here is a no-op.

    torchrun --standalone --nproc_per_node 2 -m qa_common.cli train bert_qa --preset tiny

Every process reads the data and builds the model; the Trainer shards the batches between them (DDP). Only the
main process (rank 0) touches the MLflow store, writes the job state and does the work after training; the others
train, wait for every process to finish training, and return.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, TypeVar

T = TypeVar("T")

# How long a process waits for the others at a collective (a broadcast, a barrier, a gradient all-reduce) before it
# fails instead of hanging; the Trainer's default (TrainingArguments.ddp_timeout). The main process logs the
# datasets to MLflow while the others wait for its checkpoint decision, and that must fit in it.
TIMEOUT = timedelta(minutes=30)


def world_size() -> int:
    """How many processes the launcher started (WORLD_SIZE, set by torchrun and accelerate launch); 1 without one."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def start() -> None:
    """Join the launcher's process group: NCCL when there is a GPU, else gloo; the Trainer then uses the same group.

    Through accelerate's PartialState, as the Trainer itself does (it picks the backend, the device of each
    process and reads torchrun's or accelerate's environment), with TIMEOUT on every collective, so a process
    whose peer hangs fails rather than waiting for ever; a peer that dies makes the launcher stop them all.
    """
    if world_size() <= 1:
        return
    import torch
    from accelerate import PartialState

    PartialState(cpu=not torch.cuda.is_available(), timeout=TIMEOUT)


def per_process_batch_size(batch_size: int) -> int:
    """The batch each process trains on, when ``batch_size`` is the batch of one optimizer step across all processes.

    The job's ``batch_size`` means the same thing at any number of processes, so a run gives the same numbers on
    1 or N processes and a run killed on N processes resumes on M with its settings unchanged.
    """
    processes = world_size()
    if batch_size % processes:
        raise ValueError(f"batch_size {batch_size} is the batch of one optimizer step across all processes; "
                         f"it must be a multiple of the {processes} processes")
    return batch_size // processes


def trainer_arguments() -> dict[str, Any]:
    """What HF TrainingArguments needs to train these processes as one job. Without CUDA, the Trainer joins the
    processes only when told its device is the CPU; otherwise each would train alone on all the data."""
    if world_size() <= 1:
        return {}
    import torch

    return {"use_cpu": not torch.cuda.is_available(), "ddp_timeout": int(TIMEOUT.total_seconds())}


def from_main(value: T) -> T:
    """``value`` as the main process has it (every process calls this; the others' values are ignored)."""
    if world_size() <= 1:
        return value
    import torch.distributed as dist

    holder: list[Any] = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def finish_training() -> None:
    """Wait until every process has finished training, then leave the process group: from here on the main
    process works alone (calibration, evaluation, export, benchmark, registration) and the others exit."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
