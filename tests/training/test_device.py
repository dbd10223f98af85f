"""Device choice by behaviour: which accelerators exist is simulated (monkeypatched availability), so the order
CUDA > MPS > CPU and the messages are checked on any machine; $ATTNVIZ_DEVICE forces what 'auto' takes; autocast is
checked for what it does on the CPU; recurrent cells are probed once for bf16 autocast; the default run cap follows
the GPU."""
import itertools
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from attnviz.training import device as devices
from attnviz.training.device import autocast, describe, pick_device


@pytest.fixture
def machine(monkeypatch):
    """machine(cuda=..., mps=...): torch reports exactly these accelerators."""
    monkeypatch.delenv("ATTNVIZ_DEVICE", raising=False)

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


def test_the_environment_variable_forces_what_auto_takes(monkeypatch):
    monkeypatch.setenv("ATTNVIZ_DEVICE", "cpu")
    assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setenv("ATTNVIZ_DEVICE", "tpu")
    with pytest.raises(ValueError, match="ATTNVIZ_DEVICE='tpu' is not known"):
        pick_device("auto")
    assert pick_device("cpu") == torch.device("cpu")  # an explicit name does not read the variable
    if not torch.cuda.is_available():
        monkeypatch.setenv("ATTNVIZ_DEVICE", "cuda")
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            pick_device("auto")


LSTM_FORWARD = nn.LSTM.forward


class OldCudnnLSTM(nn.LSTM):
    """An LSTM as old cuDNN versions run it: under bf16 autocast it raises."""
    calls = 0

    def forward(self, x, hx=None):
        OldCudnnLSTM.calls += 1
        if torch.is_autocast_enabled(self.weight_ih_l0.device.type):
            raise RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED for BFloat16\nmore lines")
        return LSTM_FORWARD(self, x, hx)


@pytest.fixture
def fresh_probe():
    devices.bf16_failure.cache_clear()
    yield
    devices.bf16_failure.cache_clear()


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_the_probe_passes_cells_that_run_under_bf16_autocast(cell, fresh_probe):
    state = torch.get_rng_state()
    assert devices.bf16_failure("cpu", cell) == ""
    assert torch.equal(torch.get_rng_state(), state)  # the probe leaves the caller's randomness alone


def test_a_failing_cell_is_probed_once_per_device_and_named(fresh_probe):
    OldCudnnLSTM.calls = 0
    first = devices.bf16_failure("cpu", OldCudnnLSTM)
    assert first == "OldCudnnLSTM under bf16 autocast raised cuDNN error: CUDNN_STATUS_NOT_SUPPORTED for BFloat16"
    assert devices.bf16_failure("cpu", OldCudnnLSTM) == first and OldCudnnLSTM.calls == 1


def rnn_model():
    from attnviz.data.tokenizers import CharTokenizer
    from attnviz.models.architectures import build_model, model_config
    torch.manual_seed(0)
    return build_model(model_config("lstm+bahdanau", CharTokenizer("abc"), embed_dim=8, hidden_size=8))


def test_autocast_plan_probes_the_model_s_own_cells(monkeypatch, fresh_probe):
    cpu = torch.device("cpu")
    model = rnn_model()
    assert devices.recurrent_cells(model) and all(issubclass(c, nn.RNNBase) for c in devices.recurrent_cells(model))
    assert devices.autocast_plan(cpu, model) == (False, [])  # no autocast on the CPU at all
    monkeypatch.setattr(devices, "AUTOCAST_DEVICES", {"cpu"})  # as if the CPU were a GPU that autocasts
    assert devices.autocast_plan(cpu, model) == (True, [])
    monkeypatch.setattr(devices, "recurrent_cells", lambda m: (OldCudnnLSTM,))
    enabled, notes = devices.autocast_plan(cpu, model)
    assert not enabled and notes[0].startswith("bf16 autocast off for this RNN on this CPU: OldCudnnLSTM under")


def test_training_falls_back_to_fp32_with_a_note_when_the_cells_fail_the_probe(monkeypatch, fresh_probe):
    """The loop asks the probe: an RNN whose cell raises under autocast trains in fp32 and its result says why."""
    from attnviz.data.tasks import make_task
    from attnviz.training.config import TrainConfig
    from attnviz.training.loop import train

    monkeypatch.setattr(devices, "AUTOCAST_DEVICES", {"cpu"})
    monkeypatch.setattr(nn.LSTM, "forward", OldCudnnLSTM.forward)  # every LSTM of the model raises under autocast
    task = make_task("reverse", seed=0, min_len=3, max_len=4, alphabet="abc", n_train=64, n_val=16, n_test=16)
    model = rnn_model()
    result = train(model, task, TrainConfig(steps=3, batch_size=8, eval_every=3, snapshot_every=0, device="cpu"))
    assert result.status == "done" and result.step == 3
    assert result.notes == ["bf16 autocast off for this RNN on this CPU: LSTM under bf16 autocast raised cuDNN "
                            "error: CUDNN_STATUS_NOT_SUPPORTED for BFloat16; it trains in fp32."]


def test_a_transformer_trains_under_autocast_without_a_note(monkeypatch):
    from attnviz.data.tasks import make_task
    from attnviz.training.config import TrainConfig
    from attnviz.training.loop import train
    from attnviz.training.presets import build

    monkeypatch.setattr(devices, "AUTOCAST_DEVICES", {"cpu"})
    task = make_task("reverse", seed=0, min_len=3, max_len=4, alphabet="abc", n_train=64, n_val=16, n_test=16)
    model = build(task, "transformer", {"d_model": 16, "n_heads": 2, "d_ff": 32})[0]
    dtypes = []
    model.lm_head.register_forward_hook(lambda module, inputs, out: dtypes.append(out.dtype))
    result = train(model, task, TrainConfig(steps=2, batch_size=8, eval_every=2, snapshot_every=0, device="cpu"))
    assert result.status == "done" and result.notes == []
    assert dtypes[0] == torch.bfloat16 and dtypes[-1] == torch.float32  # trained in bf16, evaluated in fp32


@pytest.mark.parametrize("cores,gib,expected", [(32, 80, 48), (8, 80, 16), (8, 8, 4), (2, 4, 2)])
def test_the_default_cap_on_a_gpu_follows_its_memory_and_the_cores(cores, gib, expected, monkeypatch):
    monkeypatch.setattr(devices, "pick_device", lambda preference="auto": torch.device("cuda"))
    monkeypatch.setattr(devices.torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(devices.torch.cuda, "get_device_properties",
                        lambda index: SimpleNamespace(total_memory=gib << 30))
    assert devices.default_max_concurrent(cores) == expected


def test_the_default_cap_on_a_cpu_leaves_the_server_a_core(monkeypatch):
    monkeypatch.setenv("ATTNVIZ_DEVICE", "cpu")
    assert devices.default_max_concurrent(8) == 7 and devices.default_max_concurrent(1) == 1
    from attnviz.training.runs import RunRegistry
    assert RunRegistry().max_concurrent == devices.default_max_concurrent()
