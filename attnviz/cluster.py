"""What a Ray cluster costs a class, measured (run by `python -m attnviz bench --only cluster_runs`):

- runs completed per minute for the four reverse presets, through the local executor (two worker processes at
  once) and through a local Ray of two CPUs (one actor per run, Ray queueing the rest);
- the overhead per run: start-up (start pressed to the first step the server sees), how often the server's view
  of a run changes (the page's freshness), and stop (stop pressed to the run ended);
- what the local Ray takes: seconds to start it, and the memory of its processes, idle and while training.

Wall time: these are what people wait for, so they also feel other work on the machine.
"""
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from attnviz.training.config import TrainConfig
from attnviz.training.executor import local_executor
from attnviz.training.presets import build_preset
from attnviz.training.runs import RunRegistry, TrainingRun

REVERSE_PRESETS = ["reverse-transformer", "reverse-lstm+bahdanau", "reverse-lstm+luong", "reverse-lstm"]
WORKERS = 2


def reverse_runs(executor, steps, registry):
    """A TrainingRun per reverse preset (snapshots and evaluations as the page trains them), not started."""
    runs = []
    for preset in REVERSE_PRESETS:
        task, model, config = build_preset(preset)
        config = TrainConfig(**{**config.__dict__, "steps": steps or config.steps, "device": "cpu"})
        runs.append(TrainingRun(model, task, config, name=f"bench-{preset}".replace("+", "-"), registry=registry,
                                executor=executor))
    return runs


def runs_per_minute(executor, steps, registry):
    """All four presets started at once (the registry or Ray letting WORKERS train); finished runs per minute."""
    runs = reverse_runs(executor, steps, registry)
    started = time.perf_counter()
    for run in runs:
        run.start()
    for run in runs:
        run.join(1800)
    seconds = time.perf_counter() - started
    failed = [f"{run.name}: {run.result.error}" for run in runs if run.result.status != "done"]
    if failed:
        raise RuntimeError(f"a benchmark run did not finish: {failed[0]}")
    return len(runs) * 60 / seconds


def overhead(executor, registry):
    """(start-up s, median s between changes of the server's view, stop s) of one reverse-transformer run."""
    run = reverse_runs(executor, 10**6, registry)[0]
    pressed = time.perf_counter()
    run.start()
    changes, step, deadline = [], 0, time.monotonic() + 600
    while len(changes) < 26:
        if time.monotonic() > deadline:
            run.stop()
            raise RuntimeError("a benchmark run showed no progress for 10 minutes")
        seen = run.snapshot().step
        if seen != step:
            changes.append(time.perf_counter())
            step = seen
        time.sleep(0.002)
    stop_pressed = time.perf_counter()
    run.stop(timeout=60)
    stopped = time.perf_counter()
    gaps = [b - a for a, b in zip(changes[1:], changes[2:])]
    return changes[0] - pressed, statistics.median(gaps), stopped - stop_pressed


def memory_of_children():
    """MiB resident in this process's descendants (Linux /proc; a local Ray's processes are all ours)."""
    parents = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:  # ended meanwhile
            continue
        parents[int(status.parent.name)] = (int(fields["PPid"]), int(fields.get("VmRSS", "0 kB").split()[0]))
    ours, grew = {os.getpid()}, True
    while grew:
        grew = False
        for pid, (ppid, _) in parents.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                grew = True
    total = sum(parents[pid][1] for pid in ours - {os.getpid()} if pid in parents)
    return total / 1024


def peak_memory_while(work):
    """(work's result, the largest memory_of_children() sampled every 0.2 s while it ran)."""
    peak, done = [0.0], threading.Event()

    def sample():
        while not done.wait(0.2):
            peak[0] = max(peak[0], memory_of_children())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        return work(), peak[0]
    finally:
        done.set()
        sampler.join()


def cluster_runs(quick):
    """Rows for the local executor and a local Ray of WORKERS CPUs, with the same numbers."""
    import ray

    from attnviz.training import ray_executor, run_board

    steps = 60 if quick else None  # None: each preset's own steps
    rows = []
    local = local_executor()
    runs_per_minute(local, 5, RunRegistry(WORKERS))  # warm up: the pool's worker processes started
    idle = memory_of_children()
    rate, peak = peak_memory_while(lambda: runs_per_minute(local, steps, RunRegistry(WORKERS)))
    startup, view, stop = overhead(local, RunRegistry(WORKERS))
    rows.append(dict(executor="local worker processes", workers=WORKERS, runs_per_minute=rate, startup_s=startup,
                     view_update_s=view, stop_s=stop, setup_s=0.0, idle_mib=idle, peak_mib=peak))
    local.shutdown()

    folder = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    began = time.perf_counter()
    ray.init(num_cpus=WORKERS, include_dashboard=False, namespace=run_board.NAMESPACE, log_to_driver=False,
             _temp_dir=folder)
    try:
        executor = ray_executor.RayExecutor()
        setup, idle = time.perf_counter() - began, memory_of_children()
        unbounded = RunRegistry(10**6)  # Ray's two CPUs are the cap
        rate, peak = peak_memory_while(lambda: runs_per_minute(executor, steps, unbounded))
        startup, view, stop = overhead(executor, unbounded)
        rows.append(dict(executor="local Ray (actor per run)", workers=WORKERS, runs_per_minute=rate,
                         startup_s=startup, view_update_s=view, stop_s=stop, setup_s=setup, idle_mib=idle,
                         peak_mib=peak))
    finally:
        ray.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    for row in rows:
        row["steps_each"] = steps or "preset"
    return rows
