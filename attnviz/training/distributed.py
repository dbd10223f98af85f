"""One model trained on several processes with DistributedDataParallel, under torchrun.

    torchrun --nproc_per_node=2 --standalone -m attnviz train --preset reverse-transformer --name rev-ddp

    with joined_ranks("auto") as ranks:     # gloo on the CPU, nccl on CUDA (one GPU per local rank)
        train(model, task, config, ranks=ranks)

Every rank builds the same seeded model and draws the same global batches; each trains on its shard of every
batch (rows rank, rank + N, ... as torch's DistributedSampler deals them), so the global batch is the one a
single process would train on. Its mean loss is weighted by its share of the batch's target tokens, so the
gradients DistributedDataParallel averages are those of the whole batch's mean loss, whatever the padding.
Clipping, the NaN guard and AdamW then see the same gradients on every rank and keep the weights equal. Rank 0
evaluates, takes the attention snapshots, logs and saves; a stop (Ctrl-C, a time budget, a reached target) is
agreed by all ranks, so none waits for a step the others will not take.
"""
import contextlib
import os

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from attnviz.data.batch import Batch
from attnviz.training.device import pick_device


def launched():
    """This process is one of several started by torchrun (torch.distributed.run)."""
    return dist.is_torchelastic_launched() and int(os.environ.get("WORLD_SIZE", "1")) > 1


class LogitsOf(nn.Module):
    """The (B, T, V) logits of every model kind as a forward pass, which is the call DDP synchronises."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, src, tgt_in):
        return self.model.logits(src, tgt_in)


class DataParallel:
    """The loop's view of its ranks (see attnviz.training.loop.OneProcess) in a joined process group."""

    def __init__(self, device):
        self.device, self.rank, self.world = device, dist.get_rank(), dist.get_world_size()
        self.is_main = self.rank == 0

    def wrap(self, model):
        device_ids = [self.device] if self.device.type == "cuda" else None
        return DistributedDataParallel(LogitsOf(model), device_ids=device_ids)

    def shard(self, batch):
        """Rows rank, rank + world, ... of the global batch, and world * (its target tokens / the batch's)."""
        rows = slice(self.rank, None, self.world)
        if batch.tgt_in.shape[0] < self.world:
            raise ValueError(f"a batch of {batch.tgt_in.shape[0]} rows cannot be shared by {self.world} processes: "
                             f"use a batch size of at least {self.world}")
        part = Batch(None if batch.src is None else batch.src[rows], batch.tgt_in[rows], batch.tgt_out[rows])
        return part, self.world * part.n_tokens / batch.n_tokens

    def agree(self, code):
        decision = torch.tensor([code], device=self.device)
        dist.all_reduce(decision, op=dist.ReduceOp.MAX)
        return int(decision.item())

    def batch_mean(self, weighted_loss, finite):
        summed = torch.stack([weighted_loss.detach().float(), finite.float()]).to(self.device)  # (2,)
        dist.all_reduce(summed)  # the sum over ranks
        return summed[0].item() / self.world, summed[1].item() == self.world


def backend_for(device):
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def joined_ranks(device_choice="auto"):
    """Join torchrun's process group (from its environment) on this rank's device; leave it at the end."""
    device = pick_device(device_choice)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group(backend_for(device))
    try:
        yield DataParallel(device)
    finally:
        dist.destroy_process_group()
