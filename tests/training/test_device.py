"""Device choice: explicit names are checked, 'auto' takes what exists, autocast changes nothing on the CPU."""
import pytest
import torch

from attnviz.training.device import autocast, describe, pick_device

ACCELERATORS = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}


def test_an_unknown_device_is_a_clear_error():
    with pytest.raises(ValueError, match="'tpu' is not known: choose auto, cpu, cuda or mps"):
        pick_device("tpu")


@pytest.mark.parametrize("name", ACCELERATORS)
def test_an_accelerator_is_given_only_where_it_exists(name):
    if ACCELERATORS[name]():
        assert pick_device(name) == torch.device(name)
    else:
        with pytest.raises(ValueError, match=f"device='{name}' was asked for but .* use auto or cpu"):
            pick_device(name)


def test_auto_takes_cuda_then_mps_then_the_cpu():
    available = [name for name, is_available in ACCELERATORS.items() if is_available()]
    assert pick_device("auto").type == (available[0] if available else "cpu")
    assert pick_device("cpu") == torch.device("cpu")


def test_cpu_autocast_keeps_float32_and_the_label_counts_threads():
    cpu = torch.device("cpu")
    with autocast(cpu):
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.float32
    label = describe(cpu)
    assert label.startswith("CPU (") and f"{torch.get_num_threads()} torch thread" in label
