"""Device choice (CUDA, then MPS, then CPU), bf16 autocast on CUDA, and the process's thread count."""
import contextlib
import os

import torch

_threads_set = False


def mps_available():
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def pick_device(preference="auto"):
    """`auto` takes CUDA, then Apple MPS, then the CPU; an explicit name must be available."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device={preference!r} is not known: choose auto, cpu, cuda or mps")
    if preference == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA GPU is available here: use auto or cpu")
    if preference == "mps" and not mps_available():
        raise ValueError("device='mps' was asked for but Apple MPS is not available here: use auto or cpu")
    return torch.device(preference)


def describe(device):
    """A short human label, e.g. 'CUDA (NVIDIA A100)' or 'CPU (2 cores)'."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple MPS"
    threads = torch.get_num_threads()
    return f"CPU ({os.cpu_count()} cores, {threads} torch thread{'s' if threads > 1 else ''})"


def autocast(device):
    """bf16 autocast on CUDA; nothing elsewhere (CPU bf16 is slower for models this small)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads_once(n=None):
    """Set torch's (process-wide) thread count once: cores - 1, at least 1, so a server keeps a core."""
    global _threads_set
    if not _threads_set:
        torch.set_num_threads(n or max(1, (os.cpu_count() or 2) - 1))
        _threads_set = True
    return torch.get_num_threads()
