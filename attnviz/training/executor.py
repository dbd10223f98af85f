"""Where runs train: one executor interface, `submit(job) -> handle`, so the app does not care where.

    handle = local_executor().submit(Job.of(model, task, config))  # trains in a worker process of a local pool
    handle.snapshot(); handle.stop(); result, weights = handle.result()

`LocalExecutor` (the embedded default) keeps spawned worker processes and reuses them, one job at a time each;
a worker that dies ends its job "failed: worker lost" and is replaced by a fresh one on the next submit.
`ThreadExecutor` trains in a thread of this process (the CLI, one rank of a torchrun, and the bench's
side-by-side). `default_executor()` picks the local pool, or Ray's cluster (attnviz.training.ray_executor) when
$ATTNVIZ_RAY_ADDRESS is set; Ray is imported only then. What crosses a process boundary is plain data: the job as
dicts and safetensors bytes, deltas of numbers and numpy arrays back, the final weights as safetensors bytes.
"""
import multiprocessing
import os
import threading
from dataclasses import dataclass, replace

from attnviz.i18n import N_, Message
from attnviz.training import worker
from attnviz.training.device import default_max_concurrent
from attnviz.training.job import Mirror
from attnviz.training.loop import ONE_PROCESS


class LocalHandle:
    """A job on a local worker process: a thread of this process reads its deltas (blocking on the pipe only)."""

    def __init__(self, executor, worker, job):
        self.executor, self.worker, self.mirror = executor, worker, Mirror()
        self.finished = threading.Event()
        self.weights, self.test_metrics = None, None
        self.send_lock = threading.Lock()
        with self.send_lock:
            worker.conn.send(("train", replace(job, live=None)))  # plain data only
        self.reader = threading.Thread(target=self._read, name="attnviz-train-reader", daemon=True)
        self.reader.start()

    def _read(self):
        try:
            while True:
                kind, delta, *final = self.worker.conn.recv()
                self.mirror.apply(delta)
                if kind == "end":
                    self.weights, self.test_metrics = final
                    self.executor.release(self.worker)
                    break
        except (EOFError, OSError):  # the worker died (killed, out of memory): this job fails, nothing else does
            self.worker.process.join(5)
            with self.mirror.lock:
                self.mirror.result.status = "failed"
                self.mirror.result.error = Message(N_("worker lost: the training process ended unexpectedly (exit "
                                                      "code {code}); start the run again"),
                                                   code=self.worker.process.exitcode)
            self.executor.discard(self.worker)
        finally:
            self.finished.set()

    def stop(self):
        try:
            with self.send_lock:
                self.worker.conn.send(("stop",))
        except (OSError, ValueError):  # already gone: the reader reports it
            pass

    def result(self, timeout=None):
        """(TrainResult, final weights as safetensors bytes or None, test metrics or None) once the job ended."""
        self.finished.wait(timeout)
        return self.mirror.result, self.weights, self.test_metrics


@dataclass
class Worker:
    process: multiprocessing.Process
    conn: object  # this side of the duplex pipe


class LocalExecutor:
    """A pool of spawned worker processes, kept and reused; each trains one job at a time."""

    def __init__(self):
        self.context = multiprocessing.get_context("spawn")
        self.idle, self.busy = [], set()
        self.lock = threading.Lock()

    def submit(self, job):
        with self.lock:
            worker = self.idle.pop() if self.idle else self._spawn()
            self.busy.add(id(worker))
        return LocalHandle(self, worker, job)

    def _spawn(self):
        ours, theirs = self.context.Pipe(duplex=True)
        process = self.context.Process(target=worker.serve, args=(theirs,), name="attnviz-worker", daemon=True)
        process.start()
        theirs.close()
        return Worker(process, ours)

    def release(self, worker):
        with self.lock:
            self.busy.discard(id(worker))
            self.idle.append(worker)

    def discard(self, worker):
        with self.lock:
            self.busy.discard(id(worker))
        worker.conn.close()

    @property
    def n_busy(self):
        with self.lock:
            return len(self.busy)

    def shutdown(self, timeout=10):
        """End every idle worker (a busy one ends when its job does and is not reused)."""
        with self.lock:
            idle, self.idle = self.idle, []
        for w in idle:
            w.conn.close()  # the worker's recv sees EOF and returns
        for w in idle:
            w.process.join(timeout)
            if w.process.is_alive():
                w.process.kill()
                w.process.join()


class ThreadHandle:
    """A job trained in a thread of this process: the run's own model, in place (weights come back as None)."""

    def __init__(self, job, ranks=ONE_PROCESS):
        self.mirror, self.stopping, self.weights, self.test_metrics = Mirror(), threading.Event(), None, None
        self.thread = threading.Thread(target=self._work, args=(job, ranks), name="attnviz-train-thread", daemon=True)
        self.thread.start()

    def _work(self, job, ranks):
        _, self.test_metrics = worker.run_job(job, self.mirror.result, self.stopping.is_set, self.mirror.lock, ranks)

    def stop(self):
        self.stopping.set()

    def result(self, timeout=None):
        self.thread.join(timeout)
        return self.mirror.result, self.weights, self.test_metrics


class ThreadExecutor:
    """Trains in threads of this process: no start-up cost, but the GIL is shared with everything else here.
    Under torchrun, `ranks` (attnviz.training.distributed.DataParallel) makes each run one rank of a DDP run."""

    def __init__(self, ranks=ONE_PROCESS):
        self.ranks = ranks

    def submit(self, job):
        return ThreadHandle(job, self.ranks)

    def shutdown(self, timeout=10):
        pass


_LOCAL = None
_LOCAL_LOCK = threading.Lock()


def local_executor():
    """The process-wide local pool, made on first use (one per server process)."""
    global _LOCAL
    with _LOCAL_LOCK:
        if _LOCAL is None:
            _LOCAL = LocalExecutor()
        return _LOCAL


RAY_ADDRESS_VARIABLE = "ATTNVIZ_RAY_ADDRESS"  # auto, or ray://host:10001: every run becomes a Ray actor


def default_executor():
    """Where the app's runs train: Ray's cluster when $ATTNVIZ_RAY_ADDRESS is set, else the local pool."""
    address = os.environ.get(RAY_ADDRESS_VARIABLE, "").strip()
    if not address:
        return local_executor()
    from attnviz.training.ray_executor import ray_executor  # only here: no Ray start-up cost without a cluster
    return ray_executor(address)


def default_slots():
    """How many runs a server lets train at once: all of them on a cluster (Ray's free resources queue them, not
    a second queue here), else the local cap (attnviz.training.device.default_max_concurrent)."""
    return 10**6 if os.environ.get(RAY_ADDRESS_VARIABLE, "").strip() else default_max_concurrent()


def class_runs():
    """On a Ray cluster, the records of every run of the class, from all its web servers (newest first: name,
    owner, server, status, step, steps, node; see attnviz.training.run_board); None when runs train here."""
    if not os.environ.get(RAY_ADDRESS_VARIABLE, "").strip():
        return None
    return default_executor().board.runs()
