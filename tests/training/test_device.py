"""Device choice by behaviour: which accelerators exist is simulated (monkeypatched availability), so the order
CUDA > MPS > CPU and the messages are checked on any machine; autocast is checked for what it does on the CPU."""
import itertools

import pytest
import torch

from attnviz.training.device import autocast, describe, pick_device


@pytest.fixture
def machine(monkeypatch):
    """machine(cuda=..., mps=...): torch reports exactly these accelerators."""
    def simulate(cuda, mps):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return simulate


@pytest.mark.parametrize("cuda, mps", list(itertools.product([True, False], repeat=2)))
def test_auto_takes_cuda_then_mps_then_the_cpu(machine, cuda, mps):
    machine(cuda, mps)
    expected = {(True, True): "cuda", (True, False): "cuda", (False, True): "mps", (False, False): "cpu"}[cuda, mps]
    assert pick_device("auto") == torch.device(expected)
    assert pick_device("cpu") == torch.device("cpu")  # the CPU is always there


@pytest.mark.parametrize("name, message", [("cuda", "device='cuda' was asked for but no CUDA GPU is available here"),
                                           ("mps", "device='mps' was asked for but Apple MPS is not available here")])
def test_an_accelerator_is_given_only_where_it_exists(machine, name, message):
    machine(cuda=False, mps=False)
    with pytest.raises(ValueError, match=f"{message}: use auto or cpu"):
        pick_device(name)
    machine(cuda=name == "cuda", mps=name == "mps")
    assert pick_device(name) == torch.device(name)


def test_an_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="'tpu' is not known: choose auto, cpu, cuda or mps"):
        pick_device("tpu")


def test_cpu_autocast_is_off_so_a_matmul_stays_float32():
    """Inside torch's own CPU autocast a matmul comes out bfloat16; inside ours on the CPU it stays float32
    and autocast reports itself off."""
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16  # what "on" would look like, so the check below can fail
    with autocast(torch.device("cpu")):
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ b).dtype == torch.float32
        torch.testing.assert_close(a @ b, a.double().matmul(b.double()).float())


@pytest.mark.cuda
def test_cuda_autocast_computes_a_matmul_in_bfloat16():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    a, b = torch.randn(4, 8, device="cuda"), torch.randn(8, 3, device="cuda")
    with autocast(torch.device("cuda")):
        assert (a @ b).dtype == torch.bfloat16


def test_the_cpu_label_names_cores_and_threads(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert describe(torch.device("cpu")) == "CPU (6 cores, 1 torch thread)"
