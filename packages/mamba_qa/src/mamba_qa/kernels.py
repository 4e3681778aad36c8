"""Which code path runs Mamba: the fused CUDA kernels of mamba-ssm and causal-conv1d, or the PyTorch reference.

transformers' Mamba binds its five kernel functions when it is imported: the packages' fused kernels when they
import, else its own PyTorch versions (the reference path: a sequential scan, slow beyond tiny sizes). Forcing
the reference path with the kernels installed (a model on the CPU, ``kernels="reference"``, or the parity test)
swaps those module functions for the PyTorch versions they wrap, for the duration of a forward pass.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import threading
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import torch

# transformers.models.mamba.modeling_mamba's kernel functions: training's fused block (conv, scan and the
# projections in one kernel), prefill's conv and scan, and decoding's one-step conv and state update.
KERNEL_FUNCTIONS = ("mamba_inner_fn", "causal_conv1d_fn", "mamba_selective_scan", "causal_conv1d_update",
                    "mamba_selective_state_update")
_MAMBA_MODULE = "transformers.models.mamba.modeling_mamba"
_swap_lock = threading.RLock()
_SWITCH_ATTRIBUTE = "_squad_qa_kernel_switch"


@functools.cache
def missing_for_fused_kernels() -> tuple[str, ...]:
    """Why the fused kernels cannot run here (empty when they can): no CUDA device, a package that does not import.
    Checked once per process, as transformers binds the kernels once, when it imports its Mamba."""
    missing = []
    if not torch.cuda.is_available():
        missing.append("no CUDA device")
    for package, module in (("mamba-ssm", "mamba_ssm.ops.selective_scan_interface"),
                            ("causal-conv1d", "causal_conv1d")):
        try:
            importlib.import_module(module)
        except Exception as error:  # an ImportError, or a CUDA library that fails to load
            missing.append(f"{package} does not import ({type(error).__name__}: {error})")
    return tuple(missing)


def check_kernel_mode(mode: str) -> None:
    """Raise for ``kernels="fused"`` where the fused kernels cannot run; "auto" and "reference" always can."""
    if mode not in ("auto", "fused", "reference"):
        raise ValueError(f"kernels must be auto, fused or reference, got {mode!r}")
    if mode == "fused":
        missing = missing_for_fused_kernels()
        if missing:
            raise RuntimeError("kernels 'fused' needs a CUDA GPU with mamba-ssm and causal-conv1d installed "
                               f"(pip install 'squad-qa-mamba[cuda]', or scripts/build_mamba_kernels.sh offline): "
                               f"{'; '.join(missing)}")


@dataclass(frozen=True)
class KernelChoice:
    fused: bool
    reason: str


def choose_kernels(mode: str, device: torch.device | str) -> KernelChoice:
    """Whether a forward pass on ``device`` runs the fused kernels under ``mode``, and why."""
    device = torch.device(device)
    if mode == "reference":
        return KernelChoice(False, "kernels=reference")
    missing = missing_for_fused_kernels() if device.type == "cuda" else (f"the model is on {device.type}",)
    if missing and mode == "fused":
        raise RuntimeError(f"kernels 'fused' cannot run: {'; '.join(missing)}")
    return KernelChoice(not missing, "fused kernels" if not missing else "; ".join(missing))


@contextmanager
def reference_path(functions: Sequence[str] = KERNEL_FUNCTIONS) -> Iterator[None]:
    """Run transformers' Mamba on its PyTorch versions of ``functions`` inside the block (one block at a time)."""
    unknown = sorted(set(functions) - set(KERNEL_FUNCTIONS))
    if unknown:
        raise ValueError(f"not Mamba kernel functions: {', '.join(unknown)}; known: {', '.join(KERNEL_FUNCTIONS)}")
    module = importlib.import_module(_MAMBA_MODULE)
    with _swap_lock:
        saved = {name: getattr(module, name) for name in functions}
        try:
            for name, function in saved.items():
                # transformers wraps each PyTorch version with functools.wraps: __wrapped__ is it.
                setattr(module, name, inspect.unwrap(function))
            yield
        finally:
            for name, function in saved.items():
                setattr(module, name, function)


class KernelSwitch:
    """Forward hooks of a transformers Mamba model choosing its code path on every forward pass.

    ``mode`` as in ``MambaQAConfig.kernels``. ``bypass_inner_in_training``: a LoRA adapter on x_proj, which
    training's fused block (``mamba_inner_fn``) would skip, since it reads that layer's weight directly; training
    then runs the separate fused conv and scan kernels instead.
    """

    def __init__(self, mode: str, *, bypass_inner_in_training: bool = False):
        check_kernel_mode(mode)
        self.mode = mode
        self.bypass_inner_in_training = bypass_inner_in_training
        self._stack: ExitStack | None = None
        self._handles: tuple = ()
        self.last_choice: KernelChoice | None = None

    @classmethod
    def install(cls, module: torch.nn.Module, mode: str, *, bypass_inner_in_training: bool = False) -> KernelSwitch:
        """Put the switch on ``module``, or set the one already there (one switch per module)."""
        switch = getattr(module, _SWITCH_ATTRIBUTE, None)
        if switch is None:
            switch = cls(mode, bypass_inner_in_training=bypass_inner_in_training)
            switch._handles = (module.register_forward_pre_hook(switch._before),
                               module.register_forward_hook(switch._after, always_call=True))
            setattr(module, _SWITCH_ATTRIBUTE, switch)
        else:
            check_kernel_mode(mode)
            switch.mode, switch.bypass_inner_in_training = mode, bypass_inner_in_training
        return switch

    @staticmethod
    def remove(module: torch.nn.Module) -> None:
        """Take the switch off ``module`` (a copy about to be saved, say)."""
        switch = getattr(module, _SWITCH_ATTRIBUTE, None)
        if switch is not None:
            for handle in switch._handles:
                handle.remove()
            delattr(module, _SWITCH_ATTRIBUTE)

    def _before(self, module: torch.nn.Module, args) -> None:
        device = next(module.parameters()).device
        self.last_choice = choose_kernels(self.mode, device)
        functions: tuple[str, ...] = ()
        if not self.last_choice.fused:
            functions = KERNEL_FUNCTIONS
        elif self.bypass_inner_in_training and module.training:
            functions = ("mamba_inner_fn",)
        self._stack = ExitStack()
        if functions:
            self._stack.enter_context(reference_path(functions))

    def _after(self, module: torch.nn.Module, args, output) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()
