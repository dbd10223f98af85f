"""The class's runs on a Ray cluster, seen by every web server: a detached, named Ray actor holds one record per run.

    board = connect()             # the actor "attnviz-runs" (namespace "attnviz"), made by the first server to ask
    board.claim(job)              # ValueError if a run of that name is still going on another server
    board.publish(job, mirror)    # the run's status, step and node, sent without waiting for an answer
    board.runs()                  # [record], newest first: what every server of the class shows

Detached, the actor outlives the server that made it and lives as long as the cluster; every server reaches the
same one by its name. Checkpoints are not kept here: they live in a folder every server reads
($ATTNVIZ_USER_DIR on a shared disk).
"""
import os
import socket
import time

import ray

NAMESPACE, NAME = "attnviz", "attnviz-runs"
KEEP = 300  # records of ended runs kept, newest first (a course of 300)
GOING = ("queued", "running")
CALL_TIMEOUT = 30.0  # seconds for an answer from the board
PUBLISH_EVERY = 1.0  # seconds between two records of one run, unless its status changed


@ray.remote(num_cpus=0)
class RunBoard:
    """name -> record of every run of the class, in the order they were claimed."""

    def __init__(self):
        self.records = {}

    def claim(self, name, owner, server, steps):
        """Record a new run under `name`; False if a run of that name is still going on another server."""
        held = self.records.get(name)
        if held is not None and held["status"] in GOING and held["server"] != server:
            return False
        self.records.pop(name, None)
        self.records[name] = {"name": name, "owner": owner, "server": server, "status": "queued", "step": 0,
                              "steps": steps, "node": "", "error": "", "updated": time.time()}
        ended = [n for n, r in self.records.items() if r["status"] not in GOING]
        for old in ended[:max(0, len(ended) - KEEP)]:
            del self.records[old]
        return True

    def update(self, name, fields):
        if name in self.records:
            self.records[name].update(fields, updated=time.time())

    def runs(self):
        return list(reversed(self.records.values()))


class BoardClient:
    """One server's calls to the board; `server` names this server in the records."""

    def __init__(self, actor, server):
        self.actor, self.server, self.sent = actor, server, {}  # sent: run name -> (status, time) last published

    def claim(self, job):
        if not ray.get(self.actor.claim.remote(job.name, job.owner, self.server, job.train["steps"]),
                       timeout=CALL_TIMEOUT):
            raise ValueError(f"a run named {job.name!r} is training on another server of the class: "
                             "choose another name")
        self.sent.pop(job.name, None)

    def publish(self, job, mirror):
        with mirror.lock:
            r = mirror.result
            fields = {"status": r.status, "step": r.step, "node": mirror.node, "error": r.error}
        status, at = self.sent.get(job.name, (None, 0.0))
        if fields["status"] != status or time.monotonic() - at >= PUBLISH_EVERY:
            self.sent[job.name] = (fields["status"], time.monotonic())
            self.actor.update.remote(job.name, fields)  # fire and forget: the run does not wait for the board

    def runs(self):
        return ray.get(self.actor.runs.remote(), timeout=CALL_TIMEOUT)


def connect(server=None):
    """A client of the class's board (made if no server made it yet); `server` defaults to host:process id."""
    actor = RunBoard.options(name=NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True).remote()
    return BoardClient(actor, server or f"{socket.gethostname()}:{os.getpid()}")
