"""Runs on a Ray cluster: every run is a Ray actor, so Ray's scheduler queues the runs and places them on nodes.

    executor = ray_executor("auto")      # or "ray://head:10001": joins the cluster once per server process
    handle = executor.submit(job)        # the interface of attnviz.training.executor: snapshot via the mirror,
    handle.stop(); result, weights, test_metrics = handle.result()

An actor (`Trainer`) asks for one CPU, or a share of a GPU for a CUDA run, so the cluster's free resources are the
queue and the cap (a run waiting for them is "queued", at no place in any queue of ours). It trains the job with the
worker's own `run_job` in one of its threads; the server's handle asks it about five times a second for what
changed (the same deltas a local worker streams), and the actor copies its weights every `weights_every` seconds
at a step boundary. When the actor's process or node is lost, its run ends "failed: worker lost" and keeps the
last copy of the weights, if one was made. The final weights come back as safetensors bytes and the server saves
them in its checkpoint folder, as for a local worker. Runs are published to the class's shared registry
(attnviz.training.run_board), so every web server of the class sees them.

Importing this module imports Ray: attnviz.training.executor.default_executor does so only when
$ATTNVIZ_RAY_ADDRESS is set.
"""
import contextlib
import os
import threading
import time
from dataclasses import replace

import ray
import torch
from ray.exceptions import RayError

from attnviz.i18n import N_, Message
from attnviz.training import run_board
from attnviz.training.job import Mirror, apply_delta, delta_since, weights_bytes
from attnviz.training.loop import TrainResult
from attnviz.training.worker import PUBLISH_EVERY, rebuild, run_job

GPU_SHARE = 0.1  # of a GPU per CUDA run: ten class runs share one card (each needs far less than 1 GiB)
CALL_TIMEOUT = 60.0  # seconds a call to a running actor may take before its node counts as lost
WEIGHTS_EVERY = 10.0  # seconds between the copies of a run's weights kept against a lost worker


@ray.remote(max_concurrency=4)  # threads: `train` in one, `poll` and `stop` beside it
class Trainer:
    """One run on a cluster node: trains in a thread and answers polls for what changed."""

    def __init__(self, weights_every):
        torch.set_num_threads(1)  # as in a local worker: tiny models train fastest on one thread
        self.result, self.lock, self.stopping = TrainResult(), threading.Lock(), threading.Event()
        self.sent = {"history": 0, "evals": 0, "snapshots": 0}
        self.weights_every, self.model, self.kept = weights_every, None, None  # kept: (step, safetensors bytes)

    def where(self):
        """The node's address and this process's id; answered once Ray has placed the actor."""
        return {"node": ray.util.get_node_ip_address(), "pid": os.getpid()}

    def train(self, job):
        """(final weights as safetensors bytes, test metrics), or (None, None) if the run failed."""
        self.model, task = rebuild(job)
        next_copy = time.monotonic() + self.weights_every

        def between_steps():  # the loop asks `should_stop` before each step: the weights are whole right now
            nonlocal next_copy
            if time.monotonic() >= next_copy:
                kept = (self.result.step, weights_bytes(self.model))
                with self.lock:
                    self.kept = kept
                next_copy = time.monotonic() + self.weights_every
            return self.stopping.is_set()

        _, test_metrics = run_job(replace(job, live=(self.model, task)), self.result, between_steps, self.lock)
        return (None, None) if test_metrics is None else (weights_bytes(self.model), test_metrics)

    def poll(self):
        """(what changed since the last poll, a new copy of the weights as (step, bytes) or None)."""
        with self.lock:
            kept, self.kept = self.kept, None
            return delta_since(self.result, self.sent), kept

    def stop(self):
        self.stopping.set()


class RayHandle:
    """A run on the cluster, followed by a thread of this server that polls its actor."""

    def __init__(self, executor, job):
        self.mirror, self.executor, self.job = Mirror(status="queued"), executor, job
        self.weights, self.test_metrics, self.kept_step, self.pid = None, None, None, None
        self.placed, self.cancelled, self.finished = threading.Event(), threading.Event(), threading.Event()
        self.actor = Trainer.options(**resources_for(job.train["device"])).remote(executor.weights_every)
        self.done_ref = self.actor.train.remote(replace(job, live=None))  # plain data only
        self.follower = threading.Thread(target=self._follow, name="attnviz-ray-follower", daemon=True)
        self.follower.start()

    def _follow(self):
        try:
            where = ray.get(self.actor.where.remote())  # waits while the cluster has no free worker
            self.pid = where["pid"]
            with self.mirror.lock:
                self.mirror.node = where["node"]
            self.placed.set()
            while True:
                ended = ray.wait([self.done_ref], timeout=PUBLISH_EVERY)[0]
                self._take(*ray.get(self.actor.poll.remote(), timeout=CALL_TIMEOUT))
                if ended:
                    self.weights, self.test_metrics = ray.get(self.done_ref, timeout=CALL_TIMEOUT)
                    break
        except RayError as error:  # killed, out of memory, node lost, no answer: this run fails, nothing else
            self._end_lost(error)
        except Exception as error:  # shown in the page; the server goes on
            with self.mirror.lock:
                self.mirror.result.status, self.mirror.result.error = "failed", f"{type(error).__name__}: {error}"
        finally:
            with contextlib.suppress(Exception):  # the cluster itself may be gone: the run has ended all the same
                ray.kill(self.actor)  # gives its CPU (or GPU share) back to the cluster
                self.executor.board.publish(self.job, self.mirror)
            self.finished.set()

    def _take(self, delta, kept):
        with self.mirror.lock:
            apply_delta(self.mirror.result, delta)
            if kept is not None:
                self.kept_step, self.weights = kept
        self.executor.board.publish(self.job, self.mirror)

    def _end_lost(self, error):
        with self.mirror.lock:
            result = self.mirror.result
            if self.cancelled.is_set():  # stopped while it waited for a worker
                result.status = "stopped"
                return
            result.status = "failed"
            kept = (Message(N_("the weights of step {step} are kept"), step=self.kept_step)
                    if self.kept_step is not None else Message(N_("no weights had been copied yet")))
            result.error = Message(N_("worker lost: the run's Ray actor ended ({kind}); {kept}. Start it again."),
                                   kind=type(error).__name__, kept=kept)

    def stop(self):
        if self.placed.is_set():
            self.actor.stop.remote()
        else:  # still waiting for a worker: take it out of Ray's queue
            self.cancelled.set()
            ray.kill(self.actor)

    def result(self, timeout=None):
        """(TrainResult, weights as safetensors bytes or None, test metrics or None) once the run ended; a lost
        run's weights are the last copy kept."""
        self.finished.wait(timeout)
        return self.mirror.result, self.weights, self.test_metrics


def resources_for(device):
    """Ray resources of one run: a CPU, and a share of a GPU for a CUDA run (auto: CUDA if the cluster has a GPU)."""
    cuda = device == "cuda" or (device == "auto" and ray.cluster_resources().get("GPU", 0) > 0)
    return {"num_cpus": 1, "num_gpus": GPU_SHARE} if cuda else {"num_cpus": 1}


class RayExecutor:
    """Submits every run as a Trainer actor to the cluster this process joined."""

    def __init__(self, address=None, weights_every=WEIGHTS_EVERY):
        if not ray.is_initialized():
            try:
                ray.init(address=address, namespace=run_board.NAMESPACE, log_to_driver=False)
            except ConnectionError as error:
                raise ValueError(f"no Ray cluster answers at {address!r} ({error}): start one with `ray start "
                                 "--head`, or set $ATTNVIZ_RAY_ADDRESS to its address") from None
        self.weights_every, self.board = weights_every, run_board.connect()

    def submit(self, job):
        self.board.claim(job)
        return RayHandle(self, job)

    def shutdown(self, timeout=10):
        pass  # runs end by themselves; their actors are killed when they do


_EXECUTORS = {}
_LOCK = threading.Lock()


def ray_executor(address):
    """The process-wide executor for a cluster address (joined on first use)."""
    with _LOCK:
        if address not in _EXECUTORS:
            _EXECUTORS[address] = RayExecutor(address)
        return _EXECUTORS[address]
