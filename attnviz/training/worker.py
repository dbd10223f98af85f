"""A training worker process: receives jobs on its pipe, trains each, streams deltas back, returns the weights.

Messages in: ("train", Job), ("stop",). Out: ("delta", delta) about five times a second, then ("end", delta,
weights as safetensors bytes, test metrics). The pipe closing ends the worker. Started by
attnviz.training.executor.LocalExecutor with the spawn start method, so nothing of the server is inherited.
"""
import os
import threading

import torch

from attnviz.data.tasks import task_from_spec
from attnviz.data.tokenizers import tokenizer_from_spec
from attnviz.training.config import TrainConfig
from attnviz.training.evaluation import evaluate_split
from attnviz.training.job import delta_since, rebuild_model, weights_bytes
from attnviz.training.loop import ONE_PROCESS, TrainResult, train

PUBLISH_EVERY = 0.2  # seconds between deltas
# Workers train below the web server's priority: pages stay quick while runs train, and a run with a free core loses
# nothing (the scheduler prefers the server only when both want the same core).
NICENESS = 5


def rebuild(job):
    """(model, task) from a job's plain data."""
    return rebuild_model(job), task_from_spec(job.task, tokenizer_from_spec(job.tokenizer, job.tokenizer_files))


def run_job(job, result, should_stop, lock, ranks=ONE_PROCESS):
    """Train a job into `result` (its live model in place if it has one, else one rebuilt from the spec), as one
    of data-parallel `ranks` if given; (final weights bytes, test metrics), or (None, None) if it failed (only
    rank 0 evaluates on the test split: the others return None for the metrics)."""
    try:
        model, task = job.live or rebuild(job)
        train(model, task, TrainConfig(**job.train), result, should_stop, lock, ranks=ranks)
        test_metrics = evaluate_split(model, task, "test") if ranks.is_main else None
        return (None if job.live else weights_bytes(model)), test_metrics
    except Exception as error:  # shown to the user in the page; the worker goes on with the next job
        with lock:
            result.status, result.error = "failed", f"{type(error).__name__}: {error}"
        return None, None


def serve(conn):
    torch.set_num_threads(1)  # tiny models train fastest on one thread, and each worker has its core
    if hasattr(os, "nice"):  # Unix
        os.nice(NICENESS)
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message[0] != "train":
            continue  # a stop that came after its job ended
        result, lock, stopping, finished = TrainResult(), threading.Lock(), threading.Event(), threading.Event()
        sent = {"history": 0, "evals": 0, "snapshots": 0}
        publisher = threading.Thread(target=publish, args=(conn, result, lock, sent, stopping, finished), daemon=True)
        publisher.start()
        weights, test_metrics = run_job(message[1], result, stopping.is_set, lock)
        finished.set()
        publisher.join()
        with lock:
            conn.send(("end", delta_since(result, sent), weights, test_metrics))


def publish(conn, result, lock, sent, stopping, finished):
    """Until the job ends: send what changed every PUBLISH_EVERY seconds, and take a stop from the pipe."""
    while not finished.wait(PUBLISH_EVERY):
        with lock:
            delta = delta_since(result, sent)
        conn.send(("delta", delta))
        while conn.poll():
            if conn.recv()[0] == "stop":
                stopping.set()
