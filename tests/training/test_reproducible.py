"""Reproducible under load: runs of one preset and seed started together in threads train bitwise the weights of
one run alone (with and without dropout), and another seed trains other weights. No global seeding is involved:
each test scrambles the global RNG from the threads while they train."""
import threading
from dataclasses import replace

import pytest
import torch

from attnviz.models.architectures import build_model
from attnviz.models.randomness import using_generator
from attnviz.training.loop import train
from attnviz.training.presets import build_preset

STEPS = 30


def prepared(seed, dropout):
    """A small `reverse-transformer` of the preset: its task and train config, `STEPS` steps, no snapshots."""
    task, model, config = build_preset("reverse-transformer", seed=seed)
    if dropout:
        model = build_model(replace(model.config, dropout=dropout), torch.Generator().manual_seed(seed))
    return model, task, replace(config, steps=STEPS, eval_every=STEPS, snapshot_every=0, device="cpu")


def trained(seed, dropout):
    model, task, config = prepared(seed, dropout)
    result = train(model, task, config)
    assert result.status == "done", result.error
    return {name: p.detach().clone() for name, p in model.state_dict().items()}


def together(n, seed, dropout):
    """Weights of `n` runs started at the same moment in threads, while another thread draws from the global RNG."""
    start, weights, errors = threading.Barrier(n + 1), [None] * n, []
    stop = threading.Event()

    def run(i):
        try:
            start.wait(timeout=60)
            weights[i] = trained(seed, dropout)
        except Exception as error:  # reported below with its reason
            errors.append(repr(error))

    def scramble():
        start.wait(timeout=60)
        while not stop.is_set():
            torch.manual_seed(int(torch.randint(1 << 30, ())))  # a neighbour that seeds the global RNG
            torch.rand(64)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    noise = threading.Thread(target=scramble)
    for thread in [*threads, noise]:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    stop.set()
    noise.join(timeout=60)
    assert not any(t.is_alive() for t in [*threads, noise])
    assert errors == []
    return weights


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_five_runs_started_together_train_the_weights_of_one_run_alone(dropout):
    alone = trained(seed=3, dropout=dropout)
    for weights in together(5, seed=3, dropout=dropout):
        assert same(weights, alone)


def test_another_seed_trains_other_weights():
    assert not same(trained(seed=3, dropout=0.2), trained(seed=4, dropout=0.2))


def test_the_same_generator_seed_builds_the_same_model_and_dropout_draws_from_it():
    model, _, _ = prepared(seed=5, dropout=0.5)
    again, _, _ = prepared(seed=5, dropout=0.5)
    assert same(model.state_dict(), again.state_dict())
    model.train()
    x = torch.ones(4, 6, dtype=torch.long)
    outs = []
    for _ in range(2):
        with using_generator(torch.Generator().manual_seed(9)):
            torch.manual_seed(len(outs))  # the global RNG differs between the two passes
            outs.append(model(x, x))
    assert torch.equal(outs[0], outs[1])
