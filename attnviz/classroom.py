"""What a class feels, measured (run by `python -m attnviz bench`, see attnviz.bench):

- `concurrent_throughput`: several training runs in one process at once, in threads as the app's registry
  runs them, against one run alone: aggregate training steps per second of wall time.
- `click_latency`: a real `streamlit run app.py` server and Chromium tabs on the Train live page, each with a
  run going (or queued); how long a click takes until the page shows the server's answer.

Both use wall time: they measure what people wait for, so they also feel other work on the machine.
"""
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from attnviz.training.config import TrainConfig
from attnviz.training.presets import build_preset
from attnviz.training.runs import RunRegistry, TrainingRun

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def aggregate_steps_per_s(n_runs, steps, preset="reverse-transformer"):
    """Total training steps per wall second of `n_runs` runs of a preset started together, all admitted at once."""
    registry = RunRegistry(max_concurrent=n_runs)
    runs = []
    for seed in range(n_runs):
        task, model, config = build_preset(preset, seed=seed)
        config = TrainConfig(**{**config.__dict__, "steps": steps})
        runs.append(TrainingRun(model, task, config, name=f"bench-{seed}", registry=registry))
    started = time.perf_counter()
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    wall = time.perf_counter() - started
    failed = [run.result.error for run in runs if run.result.status != "done"]
    if failed:
        raise RuntimeError(f"a benchmark run did not finish: {failed[0]}")
    return sum(run.result.step for run in runs) / wall


def concurrent_throughput(quick, n_runs=5):
    """Rows: 1 run alone, then `n_runs` at once; aggregate steps/s and the ratio to the solo aggregate."""
    steps = 60 if quick else 300
    aggregate_steps_per_s(1, 10)  # warm up: first-call costs of torch and the task
    solo = aggregate_steps_per_s(1, steps)
    together = aggregate_steps_per_s(n_runs, steps)
    return [dict(runs=1, steps_each=steps, aggregate_steps_per_s=solo, per_run_steps_per_s=solo, ratio=1.0),
            dict(runs=n_runs, steps_each=steps, aggregate_steps_per_s=together,
                 per_run_steps_per_s=together / n_runs, ratio=together / solo, goal=">= 0.8")]


# ---------------------------------------------------------------------------------------------- a real server

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(env=None, timeout=180):
    """`streamlit run app.py` on 127.0.0.1 (a free port) until /_stcore/health says ok; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port",
               str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
        try:
            deadline = time.monotonic() + timeout
            while not healthy(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"streamlit did not start: {log.read().decode(errors='replace')[-2000:]}")
                time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
            return response.read() == b"ok"
    except OSError:
        return False


# In the page: click a d_model step button and wait (polling every 5 ms) until the parameter count the server
# writes under the settings changes. Returns milliseconds, measured by the browser's own clock.
CLICK_AND_WAIT = """async (selector) => {
  const count = () => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
      .map(e => e.textContent).find(t => t.includes('parameters (the limit')) || '';
  const before = count(), started = performance.now();
  document.querySelector(selector).click();
  return await new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (count() && count() !== before) { clearInterval(timer); resolve(performance.now() - started); }
      else if (performance.now() - started > 60000) { clearInterval(timer); reject(new Error('no answer in 60 s')); }
    }, 5);
  });
}"""
STEP_BUTTON = '.st-key-train_d_model button[data-testid="stNumberInputStep{}"]'


def click_latency(quick, n_tabs=5):
    """Rows: p50/p95/max milliseconds of a click on the Train live page with `n_tabs` tabs, each with a run."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        return [dict(skipped="needs Debian's chromium and the playwright package (see NOTES.md)")]
    clicks_per_tab = 4 if quick else 12
    with tempfile.TemporaryDirectory() as user_dir, streamlit_server({"ATTNVIZ_USER_DIR": user_dir}) as url, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        tabs = []
        for _ in range(n_tabs):
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.goto(f"{url}/train")
            expect(tab.locator(".st-key-train_start button")).to_be_enabled(timeout=120_000)
            tab.locator(".st-key-train_start button").click()  # the 30-second demo preset
            expect(tab.locator('[data-testid="stMetric"]').first).to_be_visible(timeout=120_000)  # its run panel
            tabs.append(tab)
        for tab in tabs:  # open the settings again to click in them
            tab.locator('[data-testid="stExpander"] summary').first.click(timeout=120_000)
            expect(tab.locator(STEP_BUTTON.format("Up"))).to_be_visible(timeout=120_000)
        times = []
        for i in range(clicks_per_tab):
            for tab in tabs:
                times.append(tab.evaluate(CLICK_AND_WAIT, STEP_BUTTON.format("Up" if i % 2 == 0 else "Down")))
        browser.close()
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return [dict(tabs=n_tabs, clicks=len(times), p50_ms=statistics.median(times), p95_ms=p95, max_ms=times[-1],
                 goal="p95 < 500 ms")]
