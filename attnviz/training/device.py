"""Device choice (CUDA, then MPS, then CPU), bf16 autocast where it works, how many runs may train at once, and the
process's thread count.

    device = pick_device("auto")            # $ATTNVIZ_DEVICE (e.g. cuda) forces the choice, for a GPU check
    enabled, notes = autocast_plan(device, model)
    with autocast(device, enabled): ...     # bf16 on CUDA when `enabled`, nothing elsewhere

Recurrent cells under bf16 autocast depend on the cuDNN version (older ones raise for BFloat16 LSTM cells), so
each (device, cell type) is probed once per process with a tiny forward and backward pass; a cell that fails
trains in fp32 and the run says why.
"""
import contextlib
import functools
import os

import torch
import torch.nn as nn

from attnviz.i18n import _

DEVICE_VARIABLE = "ATTNVIZ_DEVICE"  # auto | cpu | cuda | mps: what pick_device("auto") takes
AUTOCAST_DEVICES = {"cuda"}  # where training runs under bf16 autocast (CPU bf16 is slower for models this small)
RUN_GPU_BYTES = 1 << 30  # the GPU memory one training run may allocate: far above what a 5M-parameter run needs
CUDA_CONTEXT_BYTES = 512 << 20  # what each process's CUDA context takes besides, outside the allocator

_threads_set = False


def mps_available():
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def pick_device(preference="auto"):
    """`auto` takes $ATTNVIZ_DEVICE when set, else CUDA, then Apple MPS, then the CPU; an explicit name must be
    available."""
    if preference == "auto":
        forced = os.environ.get(DEVICE_VARIABLE, "auto").strip().lower() or "auto"
        if forced != "auto":
            if forced not in ("cpu", "cuda", "mps"):
                raise ValueError(_("{variable}={device} is not known: choose auto, cpu, cuda or mps").format(
                    variable=DEVICE_VARIABLE, device=repr(forced)))
            return pick_device(forced)
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference not in ("cpu", "cuda", "mps"):
        raise ValueError(_("device={device} is not known: choose auto, cpu, cuda or mps").format(
            device=repr(preference)))
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError(_("device='cuda' was asked for but no CUDA GPU is available here: use auto or cpu"))
    if preference == "mps" and not mps_available():
        raise ValueError(_("device='mps' was asked for but Apple MPS is not available here: use auto or cpu"))
    return torch.device(preference)


def describe(device):
    """A short human label, e.g. 'CUDA (NVIDIA A100)' or 'CPU (2 cores)'."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple MPS"
    threads = torch.get_num_threads()
    return f"CPU ({os.cpu_count()} cores, {threads} torch thread{'s' if threads > 1 else ''})"


def autocast(device, enabled=True):
    """bf16 autocast on the devices of AUTOCAST_DEVICES when `enabled`; nothing elsewhere."""
    if enabled and device.type in AUTOCAST_DEVICES:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def recurrent_cells(model):
    """The recurrent module types of a model (nn.LSTM, nn.GRU, nn.RNN), by name; empty for a Transformer."""
    return tuple(sorted({type(m) for m in model.modules() if isinstance(m, nn.RNNBase)}, key=lambda c: c.__name__))


@functools.lru_cache(maxsize=None)
def bf16_failure(device, cell):
    """'' if a tiny `cell` (an nn.RNNBase class) runs forward and backward under bf16 autocast on `device`, else
    what went wrong. Cached per (device, cell); the caller's random state is left as it was."""
    device = torch.device(device)
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            rnn = cell(8, 8, batch_first=True).to(device)
            x = torch.randn(2, 3, 8, device=device, requires_grad=True)  # (B, T, D)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out, _state = rnn(x)  # (B, T, D)
            out.float().sum().backward()
            if device.type == "cuda":
                torch.cuda.synchronize(device)  # an asynchronous kernel error shows here, not in the run
        if not all(torch.isfinite(p.grad).all() for p in rnn.parameters()):
            return f"{cell.__name__} gave non-finite gradients under bf16 autocast"
        return ""
    except RuntimeError as error:
        return f"{cell.__name__} under bf16 autocast raised {str(error).strip().splitlines()[0]}"


def autocast_plan(device, model):
    """(use bf16 autocast, notes) for training `model` on `device`: autocast where AUTOCAST_DEVICES says so,
    unless one of the model's recurrent cells fails the probe on this device (then fp32, and a note why)."""
    if device.type not in AUTOCAST_DEVICES:
        return False, []
    failures = [f for f in (bf16_failure(str(device), cell) for cell in recurrent_cells(model)) if f]
    if failures:
        where = "GPU" if device.type == "cuda" else device.type.upper()
        return False, [f"bf16 autocast off for this RNN on this {where}: {'; '.join(failures)}; it trains in fp32."]
    return True, []


def default_max_concurrent(cores=None):
    """How many training runs may train at once by default: cores - 1 on a CPU (the server keeps a core); with a
    CUDA GPU, as many runs as its memory holds at RUN_GPU_BYTES (+ a CUDA context) each, at most two per core
    (a run that waits on the GPU leaves its core half idle)."""
    cores = cores or os.cpu_count() or 2
    cpu_slots = max(1, cores - 1)
    try:
        on_cuda = pick_device("auto").type == "cuda"
    except ValueError:  # a wrong $ATTNVIZ_DEVICE is reported where a run picks its device, not at import
        on_cuda = False
    if not on_cuda:
        return cpu_slots
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    gpu_slots = max(1, int(0.9 * total) // (RUN_GPU_BYTES + CUDA_CONTEXT_BYTES))
    return max(1, min(gpu_slots, 2 * cores))


def cap_gpu_memory(device, budget=RUN_GPU_BYTES):
    """In a worker process: let this process's allocator take at most `budget` bytes of the GPU (a run that
    wants more fails with out-of-memory instead of taking the card from the others). Nothing off CUDA."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, budget / total), device)


def set_threads_once(n=None):
    """Set torch's (process-wide) thread count once: cores - 1, at least 1, so a server keeps a core."""
    global _threads_set
    if not _threads_set:
        torch.set_num_threads(n or max(1, (os.cpu_count() or 2) - 1))
        _threads_set = True
    return torch.get_num_threads()
