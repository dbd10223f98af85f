"""`python -m attnviz bench` runs and writes JSON of the documented shape (tests never assert times)."""
import json
import os
import time
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attnviz import bench
from attnviz.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_bench_command_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "attnviz", "bench", "--quick", "--only", "capture_forward",
                             "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "capture_forward" in result.stdout and "set_num_threads(1)" in result.stdout
    report = json.loads(out.read_text())
    assert report["meta"]["torch_threads"] == 1 and report["meta"]["quick"] is True
    assert list(report["results"]) == ["capture_forward"]
    rows = report["results"]["capture_forward"]
    assert [row["length"] for row in rows] == [32]
    for row in rows:
        assert row["off_ms"] > 0 and row["on_ms"] > 0
        assert row["ratio"] > 0 and row["goal"] == "<= 1.3 at length 128"


def test_median_ms_ranks_a_deliberately_slowed_contender_slower():
    """The timer itself: the same work, once and twenty times over (CPU time, so a busy machine hardly matters)."""
    a = torch.randn(64, 64)
    work = lambda: a @ a
    ms = bench.median_ms({"once": work, "twenty": lambda: [work() for _ in range(20)]}, rounds=5, number=5)
    assert 0 < ms["once"] and ms["twenty"] > 5 * ms["once"]


def test_a_registered_benchmark_is_run_and_tabled(monkeypatch):
    monkeypatch.setitem(bench.BENCHMARKS, "fake", lambda quick, device: [{"size": 1, "ms": 2.5}, {"size": 10}])
    bench.BENCHMARKS["fake"].__doc__ = "A fake benchmark."
    report = bench.run(["fake"], quick=True)
    assert report["results"] == {"fake": [{"size": 1, "ms": 2.5}, {"size": 10}]}
    assert bench.format_table(report["results"]["fake"]).splitlines() == ["size   ms", "   1  2.5", "  10     "]


def test_unknown_benchmark_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--only", "no_such_benchmark"])
    assert exit_info.value.code == 2
    assert "no_such_benchmark" in capsys.readouterr().err


def test_cuda_only_benchmarks_report_a_row_on_the_cpu_and_cuda_without_a_gpu_is_an_error(capsys):
    report = bench.run(["gpu_sharing"], quick=True, device="cpu")
    assert report["results"]["gpu_sharing"] == [{"skipped": "needs CUDA: run with --device cuda on a machine with a GPU"}]
    assert report["meta"]["device"].startswith("CPU (")
    if not torch.cuda.is_available():
        assert main(["bench", "--device", "cuda", "--only", "gpu_sharing"]) == 2
        assert capsys.readouterr().err.startswith("error: device='cuda' was asked for but no CUDA GPU")


def test_the_cpu_clock_is_process_time_and_the_cuda_clock_synchronises(monkeypatch):
    assert bench.clock_for("cpu") is time.process_time
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(device))
    bench.clock_for("cuda")()
    assert synced == ["cuda"]


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="needs Linux with scheduler autogroups")
def test_deprioritize_lowers_a_session_of_its_own_with_its_group_and_leaves_the_kept_group_alone():
    from attnviz.classroom import autogroup, deprioritize
    ours = Path("/proc/self/autogroup").read_text()
    same_group = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    own_session = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        assert autogroup(own_session.pid) != autogroup(os.getpid()) == autogroup(same_group.pid)
        deprioritize([own_session.pid, same_group.pid], 19, keep=[same_group.pid])
        assert os.getpriority(os.PRIO_PROCESS, own_session.pid) == 19
        assert os.getpriority(os.PRIO_PROCESS, same_group.pid) == 19
        assert Path(f"/proc/{own_session.pid}/autogroup").read_text().split()[-1] == "19"  # its group, as a whole
        assert Path("/proc/self/autogroup").read_text() == ours  # this process's group (kept) is not lowered
    finally:
        for process in (same_group, own_session):
            process.kill()
            process.wait(timeout=60)
