"""Speed benchmarks: `python -m attnviz bench [--json PATH] [--only NAME ...] [--quick] [--device auto|cpu|cuda]`.

A benchmark is a function `name(quick, device) -> list of row dicts`, registered with `@benchmark`. The command
runs the chosen ones on one CPU thread (stable numbers on a shared machine), prints a table per benchmark
and writes everything to JSON. To add one, write a function here (or import one) and decorate it.
On the CPU timings are CPU time (`time.process_time`, which equals wall time on an idle machine with one thread
but hardly moves when other processes share the cores); on CUDA they are wall time between
`torch.cuda.synchronize()` calls, so kernels are timed, not their launches. Medians over several rounds; rivals
are timed in interleaved rounds so drift hits both alike. A benchmark that needs CUDA reports a row saying so
on a machine without it.
"""
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from attnviz.data.tokenizers import BOS, EOS
from attnviz.decoding import greedy
from attnviz.models import TransformerConfig, build_model, capture
from attnviz.models.transformer import Embedding, causal_mask
from attnviz.training.device import describe, pick_device

BENCHMARKS = {}


def benchmark(fn):
    """Register `fn(quick, device) -> list[dict]` under its own name."""
    BENCHMARKS[fn.__name__] = fn
    return fn


def clock_for(device):
    """CPU time on the CPU; on CUDA wall time read after `torch.cuda.synchronize()` (so queued kernels count)."""
    if torch.device(device).type != "cuda":
        return time.process_time

    def synchronised():
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return synchronised


def median_ms(contenders, rounds, number, warmup=3, device="cpu"):
    """Median milliseconds per call of each function in {name: fn}; each round times every contender in turn."""
    clock = clock_for(device)
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = clock()
            for _ in range(number):
                fn()
            samples[name].append((clock() - start) * 1000 / number)
    return {name: statistics.median(times) for name, times in samples.items()}


def bench_config(**overrides):
    """The model the speed benchmarks time: 2 + 2 layers, d_model 128, 4 heads, a 64-token vocabulary."""
    return TransformerConfig(**{**dict(src_vocab_size=64, tgt_vocab_size=64, d_model=128, n_heads=4,
                                       n_encoder_layers=2, n_decoder_layers=2, d_ff=512), **overrides})


def random_batch(config, batch_size, src_len, tgt_len, seed=0):
    """Random tokens with trailing padding of random length in the sources and targets."""
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(1, config.src_vocab_size, (batch_size, src_len), generator=g)  # (B, S)
    tgt = torch.randint(1, config.tgt_vocab_size, (batch_size, tgt_len + 1), generator=g)  # (B, T + 1)
    for row, (s, t) in enumerate(zip(torch.randint(src_len // 2, src_len + 1, (batch_size,), generator=g),
                                     torch.randint(tgt_len // 2, tgt_len + 2, (batch_size,), generator=g))):
        src[row, s:], tgt[row, t:] = config.pad_id, config.pad_id
    return src, tgt[:, :-1], tgt[:, 1:]  # src, tgt_in, tgt_out


class TorchTransformer(nn.Module):
    """`torch.nn.Transformer` inside the same embeddings and output layer as our EncoderDecoder."""

    def __init__(self, config):
        super().__init__()
        self.pad_id = config.pad_id
        self.src_embed = Embedding(config.src_vocab_size, config)
        self.tgt_embed = Embedding(config.tgt_vocab_size, config)
        with warnings.catch_warnings():  # "enable_nested_tensor is True, but ... norm_first was True"
            warnings.simplefilter("ignore", UserWarning)
            self.transformer = nn.Transformer(config.d_model, config.n_heads, config.n_encoder_layers,
                                              config.n_decoder_layers, config.d_ff, config.dropout,
                                              config.activation, batch_first=True, norm_first=config.norm_first)
        self.lm_head = nn.Linear(config.d_model, config.tgt_vocab_size, bias=False)

    def forward(self, src, tgt_in):
        src_padding = src == self.pad_id  # (B, S)
        T = tgt_in.shape[1]
        x = self.transformer(self.src_embed(src), self.tgt_embed(tgt_in), tgt_mask=causal_mask(T, T, src.device),
                             src_key_padding_mask=src_padding, memory_key_padding_mask=src_padding,
                             tgt_is_causal=True)  # (B, T, D)
        return self.lm_head(x)  # (B, T, V)


def training_step(model, batch, pad_id):
    """A closure doing one full AdamW training step of `model` on `batch`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    src, tgt_in, tgt_out = batch

    def step():
        logits = model(src, tgt_in)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=pad_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


@benchmark
def train_step(quick, device):
    """One training step (forward, backward, AdamW) of our EncoderDecoder vs torch.nn.Transformer."""
    config = bench_config(dropout=0.1, max_len=64)
    batch_size, length = 64, 12
    batch = [t.to(device) for t in random_batch(config, batch_size, length, length)]
    torch_model = TorchTransformer(config)  # PyTorch's own initialisation (the global RNG): weights do not change cost
    models = {"attnviz": build_model(config, torch.Generator().manual_seed(0)).to(device).train(),
              "torch": torch_model.to(device).train()}
    steps = {name: training_step(model, batch, config.pad_id) for name, model in models.items()}
    ms = median_ms(steps, rounds=3 if quick else 9, number=2 if quick else 5, device=device)
    params = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    return [dict(device=str(device), batch=batch_size, length=length, d_model=config.d_model,
                 layers=f"{config.n_encoder_layers}+{config.n_decoder_layers}", dropout=config.dropout,
                 params=params["attnviz"], torch_params=params["torch"], attnviz_ms=ms["attnviz"],
                 torch_ms=ms["torch"], ratio=ms["attnviz"] / ms["torch"], goal="<= 1.0")]


@benchmark
def capture_forward(quick, device):
    """Forward pass (no grad) with every attention pattern captured vs none, by sequence length."""
    config = bench_config(max_len=512)
    model = build_model(config, torch.Generator().manual_seed(0)).eval()
    batch_size, rows = 8, []
    for length in [32] if quick else [32, 128, 512]:
        src, tgt_in, _ = random_batch(config, batch_size, length, length)

        def forward():
            model(src, tgt_in)

        def forward_captured():
            with capture(model):
                model(src, tgt_in)

        with torch.no_grad():
            ms = median_ms({"off": forward, "on": forward_captured}, rounds=3 if quick else 7,
                           number=1 if quick else max(1, 256 // length), warmup=1 if quick else 2)
        rows.append(dict(batch=batch_size, length=length, off_ms=ms["off"], on_ms=ms["on"],
                         ratio=ms["on"] / ms["off"], goal="<= 1.3 at length 128"))
    return rows


@benchmark
def kv_cache_decoding(quick, device):
    """Greedy decoding of 64 tokens: KV cache (attnviz.decoding.greedy) vs the whole model rerun every step."""
    config = bench_config(max_len=128)
    model = build_model(config, torch.Generator().manual_seed(0)).eval()
    with torch.no_grad():
        model.lm_head.weight[EOS] = 0.0  # EOS scores 0, below the best of 63 random logits: all 64 tokens run
    new_tokens, src_len, rows = 64, 32, []
    for batch_size in (1, 8):
        src = random_batch(config, batch_size, src_len, 1)[0]  # (B, S)

        def cached():
            return greedy(model, None, src, max_new_tokens=new_tokens, trace=False).tokens  # (B, 64)

        def traced():
            return greedy(model, None, src, max_new_tokens=new_tokens).tokens  # (B, 64), attention captured

        def recomputed():
            tgt = torch.full((batch_size, 1), BOS)  # (B, 1)
            for _ in range(new_tokens):
                tgt = torch.cat([tgt, model(src, tgt)[:, -1].argmax(-1, keepdim=True)], 1)  # (B, T + 1)
            return tgt[:, 1:]  # (B, 64)

        with torch.no_grad():
            assert torch.equal(cached(), recomputed()), "cached and recomputed greedy decoding disagree"
            ms = median_ms({"cached": cached, "traced": traced, "recomputed": recomputed},
                           rounds=3 if quick else 7, number=1, warmup=1)
        rows.append(dict(batch=batch_size, src_len=src_len, new_tokens=new_tokens, cached_ms=ms["cached"],
                         traced_ms=ms["traced"], recompute_ms=ms["recomputed"],
                         speedup=ms["recomputed"] / ms["cached"], goal=">= 3 at batch 1"))
    return rows


@benchmark
def cost_by_length(quick, device):
    """Forward pass by sequence length (source = target length, batch 1) of the reverse presets' models."""
    from attnviz.interpret import comparison, contenders
    from attnviz.training.presets import build_preset

    lengths = [16, 64] if quick else [16, 32, 64, 128, 256, 512, 1024]
    rows = []
    for architecture, label in contenders.LABELS.items():
        _, model, _ = build_preset(f"reverse-{architecture}")
        for row in comparison.forward_cost(model.config, lengths, min_run_time=0.1 if quick else 0.5, device=device):
            rows.append(dict(model=label, **row))
    return rows


@benchmark
def preset_time_to_accuracy(quick, device):
    """Class presets: seconds of training to 99% validation exact match (CPU time; on CUDA synchronised wall time
    after a warm-up run, for the reverse and dates presets: goal on an H100-class GPU, reverse under 1 s)."""
    from attnviz.interpret.contenders import time_to_target
    from attnviz.training.presets import PRESETS

    if torch.device(device).type == "cuda":
        time_to_target("reverse-transformer", 0, clock=clock_for(device), device=str(device))  # warm-up: kernels, cuDNN
        names = ["reverse-transformer", "dates-transformer"]
        return [dict(time_to_target(name, seed, clock=clock_for(device), device=str(device)),
                     goal="< 1 s on an H100-class GPU" if name == "reverse-transformer" else "")
                for name in names for seed in ([0] if quick else [0, 1, 2])]
    names = ["reverse-transformer"] if quick else [n for n, p in PRESETS.items() if p.architecture != "lm"]
    return [time_to_target(name, seed, clock=time.process_time, device="cpu")
            for name in names for seed in ([0] if quick else [0, 1, 2])]


@benchmark
def induction_heads(quick, device):
    """The induction-lm preset, seeds 0-2: when a layer-1 head first scores >= 0.8 as an induction head, in steps and
    CPU seconds of training, and when the loss on the repeated half of the probes fell fastest (the jump)."""
    from dataclasses import replace

    from attnviz.interpret.head_types import induction_over_training
    from attnviz.training.loop import train
    from attnviz.training.presets import build_preset

    rows = []
    for seed in [0] if quick else [0, 1, 2]:
        task, model, config = build_preset("induction-lm", seed)
        config = replace(config, snapshot_every=25, eval_every=config.steps, steps=600 if quick else config.steps,
                         device=str(device))
        result = train(model, task, config, clock=clock_for(device))
        curve = induction_over_training(task, result.snapshots)
        layer1 = curve[[c for c in curve.columns if c.startswith("L1H")]].max(axis=1)
        formed = curve["step"][layer1 >= 0.8]
        drop = curve["repeated half loss"].diff()
        seconds = dict(zip(result.history["step"], result.history["time"]))
        step = int(formed.iloc[0]) if len(formed) else None
        rows.append(dict(seed=seed, steps=result.step, formed_at_step=step,
                         formed_at_seconds=seconds.get(step), best_layer1_score=float(layer1.max()),
                         jump_at_step=int(curve["step"][drop.idxmin()]) if drop.notna().any() else None,
                         repeated_half_loss_end=float(curve["repeated half loss"].iloc[-1]),
                         first_half_loss_end=float(curve["first half loss"].iloc[-1]), goal="score 0.8 within 90 s"))
    return rows


@benchmark
def concurrent_training(quick, device):
    """k = 1, 2 reverse-transformer runs at once, threads vs worker processes: aggregate wall steps/s vs 1 alone."""
    from attnviz import classroom
    return classroom.concurrent_throughput(quick)


@benchmark
def gpu_sharing(quick, device):
    """N class runs (N = 1, 4, 16) training at once on one GPU, each in its own process with a memory cap:
    aggregate steps/s of wall time. Needs CUDA."""
    from attnviz import classroom
    if torch.device(device).type != "cuda":
        return [dict(skipped="needs CUDA: run with --device cuda on a machine with a GPU")]
    return classroom.gpu_sharing_throughput(quick)


@benchmark
def training_beside_pages(quick, device):
    """A run's steps/s while the server process rerenders a page in a loop, thread vs worker process."""
    from attnviz import classroom
    return classroom.training_beside_pages(quick)


@benchmark
def click_latency(quick, device):
    """A real server and 10 Chromium tabs on Train live, each with a run going or queued: ms from click to answer."""
    from attnviz import classroom
    return classroom.click_latency(quick)


@benchmark
def cluster_runs(quick, device):
    """The four reverse presets through the local executor vs a local Ray of 2 CPUs: runs completed per minute, and
    per run the start-up, the interval between updates of the server's view, the stop; Ray's set-up and memory."""
    from attnviz import cluster
    return cluster.cluster_runs(quick)


def run(names=None, quick=False, threads=1, device="cpu"):
    """Run the named benchmarks (all by default) on `threads` torch threads and `device`; a JSON-able report."""
    device = pick_device(device)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = {name: BENCHMARKS[name](quick, device) for name in names or BENCHMARKS}
    finally:
        torch.set_num_threads(previous)
    meta = dict(torch=torch.__version__, python=platform.python_version(), machine=platform.machine(),
                cpu_count=os.cpu_count(), torch_threads=threads, device=describe(device), quick=quick,
                clock="time.process_time (CPU time of this process), median of interleaved rounds"
                if device.type == "cpu" else "wall time between torch.cuda.synchronize() calls, median of rounds",
                created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return dict(meta=meta, results=results)


def format_table(rows):
    """Rows of dicts as an aligned text table (floats with 3 significant digits)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    cell = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    table = [columns] + [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join("  ".join(text.rjust(w) for text, w in zip(line, widths)) for line in table)


def format_report(report):
    meta = report["meta"]
    lines = [f"torch {meta['torch']} on {meta['device']}, torch.set_num_threads({meta['torch_threads']}), "
             f"times in ms of {meta['clock']}" + (", quick" if meta["quick"] else "")]
    for name, rows in report["results"].items():
        lines += ["", f"{name}: {BENCHMARKS[name].__doc__.strip()}", format_table(rows)]
    return "\n".join(lines)


def add_parser(subparsers):
    parser = subparsers.add_parser("bench", help="time the model against torch.nn.Transformer and more",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="bench.json", metavar="PATH", help="where to write the results")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), metavar="NAME",
                        help=f"run only these: {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a smoke test)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu",
                        help="where the models run (default cpu; auto: CUDA if there is one)")
    parser.set_defaults(run=main)


def main(args):
    try:
        report = run(args.only, args.quick, device=args.device)
    except ValueError as error:  # e.g. --device cuda without a GPU
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_report(report))
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nwrote {args.json}")
