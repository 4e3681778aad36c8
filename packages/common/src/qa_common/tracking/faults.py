"""Fault injection for the reliability tests: SIGKILL the job at a named point of its work.

    SQUAD_QA_FAULT=step:7 squad-qa train bert_qa --preset tiny        # killed right after optimizer step 7
    SQUAD_QA_FAULT=log_model+0.4 squad-qa train bert_qa --preset tiny  # killed 0.4 s into logging the model

The job calls ``fault_point(name)`` at each named point (``step:N`` after every optimizer step, then
``calibrate``, ``evaluate``, ``save_model``, ``log_model``, ``log_model_onnx``, ``register``,
``register:created``, ``promote``, ``promote:aliases``, ``finish``). Unset, it does nothing. When
``SQUAD_QA_FAULT`` names the point, the process sends itself SIGKILL there (``NAME``) or a timer thread does so
``SECONDS`` later while the job carries on (``NAME+SECONDS``), so the kill lands wherever the job then is: in the
middle of a checkpoint write, an artifact upload or a registry call. Either way it is a real kill: no exception
handler, ``finally`` or ``atexit`` runs. Before dying it prints one line to stderr saying where it landed.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback

FAULT_ENV = "SQUAD_QA_FAULT"
_last_point = "start"


def _where() -> str:
    """The innermost frames of the main thread: where the job was when the kill landed."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    if frame is None:
        return "unknown"
    stack = [entry for entry in traceback.extract_stack(frame) if entry.filename != __file__][-3:]
    return " < ".join(f"{os.path.basename(entry.filename)}:{entry.lineno} {entry.name}" for entry in reversed(stack))


def _kill(description: str) -> None:
    passed = f"; last point passed {_last_point}" if _last_point not in description else ""
    print(f"fault injected: SIGKILL {description}{passed}; main thread in {_where()}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def fault_point(name: str) -> None:
    """Mark that the job reached ``name``; SIGKILL the process here (or after a delay) if SQUAD_QA_FAULT says so."""
    global _last_point
    _last_point = name
    wanted = os.environ.get(FAULT_ENV, "")
    point, _, delay = wanted.partition("+")
    if not wanted or point != name:
        return
    if not delay:
        _kill(f"at {name}")
        return
    seconds = float(delay)
    timer = threading.Timer(seconds, _kill, args=(f"{seconds:g} s after {name}",))
    timer.daemon = True
    timer.start()


def step_fault_points():
    """A Trainer callback that passes the point ``step:N`` after each optimizer step N (before that step's loss
    is logged and its checkpoint, if any, is saved)."""
    from transformers import TrainerCallback

    class StepFaultPoints(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            fault_point(f"step:{state.global_step}")

    return StepFaultPoints()
