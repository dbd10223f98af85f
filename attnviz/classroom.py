"""What a class feels, measured (run by `python -m attnviz bench`, see attnviz.bench):

- `concurrent_throughput`: k training runs at once against one alone, in threads of this process and in worker
  processes (the app's default) side by side: aggregate training steps per second of wall time.
- `training_beside_pages`: a run's steps/s while this process rebuilds a page (plotly figures, pandas tables)
  in a loop, against its solo rate, for a thread and for a worker process.
- `gpu_sharing_throughput`: N runs sharing one CUDA GPU, each in its own process whose allocator is capped at
  `device.RUN_GPU_BYTES` (so one run cannot take the card): aggregate training steps per second of wall time.
- `click_latency`: a real `streamlit run app.py` server and Chromium tabs on the Train live page, each with a
  run going (or queued); how long a click takes until the server's answer reaches the tab, and until the page
  shows it.

Both use wall time: they measure what people wait for, so they also feel other work on the machine.
"""
import contextlib
import functools
import importlib.util
import math
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from dataclasses import replace

import torch

from attnviz.training.config import TrainConfig
from attnviz.training.device import RUN_GPU_BYTES, cap_gpu_memory
from attnviz.training.loop import train
from attnviz.training.presets import build_preset
from attnviz.training.executor import ThreadExecutor, local_executor
from attnviz.training.runs import RunRegistry, TrainingRun

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


EXECUTORS = {"threads": ThreadExecutor, "processes": local_executor}


def timed_runs(n_runs, steps, executor, preset="reverse-transformer"):
    """Start `n_runs` runs of a preset together (all admitted at once); [(steps, seconds of wall time)] of each,
    the time measured from the run's first to its last reported step (a worker's start-up not counted)."""
    registry = RunRegistry(max_concurrent=n_runs)
    runs = []
    for seed in range(n_runs):
        task, model, config = build_preset(preset, seed=seed)
        config = TrainConfig(**{**config.__dict__, "steps": steps, "snapshot_every": 0, "eval_every": steps})
        runs.append(TrainingRun(model, task, config, name=f"bench-{seed}", registry=registry, executor=executor))
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    failed = [run.result.error for run in runs if run.result.status != "done"]
    if failed:
        raise RuntimeError(f"a benchmark run did not finish: {failed[0]}")
    return [(run.result.step - 1, run.result.history["time"][-1] - run.result.history["time"][0]) for run in runs]


def aggregate_steps_per_s(n_runs, steps, executor):
    """Total steps per second of `n_runs` runs at once (each run's steps over the slowest run's time)."""
    timings = timed_runs(n_runs, steps, executor)
    return sum(s for s, _ in timings) / max(t for _, t in timings)


def concurrent_throughput(quick, counts=(1, 2)):
    """Rows per executor and k: aggregate steps/s of k runs at once and its ratio to one run alone (goal >= 0.8 k)."""
    steps = 60 if quick else 300
    rows = []
    for name, make in EXECUTORS.items():
        executor = make()
        timed_runs(max(counts), 10, executor)  # warm up: first-call costs, and the pool's workers started
        solo = None
        for k in counts:
            aggregate = aggregate_steps_per_s(k, steps, executor)
            solo = solo or aggregate
            rows.append(dict(executor=name, runs=k, steps_each=steps, aggregate_steps_per_s=aggregate,
                             ratio_to_solo=aggregate / solo, goal=f">= {0.8 * k:.1f}"))
    return rows


def render_page_loop(stop):
    """What a page rerun costs the server's GIL: plotly figures and pandas tables rebuilt until `stop` is set."""
    import numpy as np
    import pandas as pd

    from attnviz.app import figures

    values = np.random.default_rng(0).random((12, 12))
    while not stop.is_set():
        figures.attention_heatmap(values, list("abcdefghijkl"), list("abcdefghijkl"), "a page").to_json()
        pd.DataFrame({"step": range(300), "loss": values.ravel().tolist()[:144] * 2 + [0.0] * 12}).to_html()


def training_beside_pages(quick):
    """Rows per executor: a run's steps/s alone and while this process rerenders a page in a loop (goal >= 80%)."""
    import threading

    steps = 60 if quick else 300
    rows = []
    for name, make in EXECUTORS.items():
        executor = make()
        timed_runs(1, 10, executor)
        (n, seconds), = timed_runs(1, steps, executor)
        stop = threading.Event()
        page = threading.Thread(target=render_page_loop, args=(stop,), daemon=True)
        page.start()
        try:
            (n_busy, seconds_busy), = timed_runs(1, steps, executor)
        finally:
            stop.set()
            page.join()
        solo, beside = n / seconds, n_busy / seconds_busy
        rows.append(dict(executor=name, steps=steps, solo_steps_per_s=solo, beside_page_steps_per_s=beside,
                         ratio=beside / solo, goal=">= 0.8"))
    return rows


def gpu_run(barrier, results, seed, steps, budget, preset="reverse-transformer"):
    """One worker process: cap its GPU memory, warm up, wait for the others, then train `steps` steps on CUDA and
    put (wall start, wall end, steps, peak bytes) on `results`."""
    device = torch.device("cuda")
    cap_gpu_memory(device, budget)
    task, model, config = build_preset(preset, seed=seed)
    config = replace(config, steps=steps, device="cuda", snapshot_every=0, eval_every=steps, eval_examples=64,
                     target_exact_match=0.0)
    train(model, task, replace(config, steps=5))  # CUDA context, kernels, allocator warm
    torch.cuda.reset_peak_memory_stats(device)
    barrier.wait(timeout=600)
    started = time.time()  # the system clock: comparable across processes
    result = train(model, task, config)
    torch.cuda.synchronize(device)
    results.put((started, time.time(), result.step, torch.cuda.max_memory_allocated(device), result.error))


def gpu_sharing_throughput(quick, counts=(1, 4, 16), budget=RUN_GPU_BYTES):
    """Rows: N runs at once on one GPU (spawned processes, each capped at `budget` bytes): aggregate steps/s of the
    wall time from the first start to the last end, per run, and the largest allocator peak of any run."""
    steps = 100 if quick else 400
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    rows, solo = [], None
    for n in counts:
        barrier, results = context.Barrier(n), context.Queue()
        workers = [context.Process(target=gpu_run, args=(barrier, results, seed, steps, budget)) for seed in range(n)]
        for worker in workers:
            worker.start()
        try:
            done = [results.get(timeout=900) for _ in workers]
        finally:
            for worker in workers:
                worker.join(timeout=60)
                if worker.is_alive():
                    worker.terminate()
        errors = [error for *_, error in done if error]
        if errors:
            raise RuntimeError(f"a GPU sharing run failed: {errors[0]}")
        wall = max(end for _, end, *_ in done) - min(start for start, *_ in done)
        aggregate = sum(step for _, _, step, *_ in done) / wall
        solo = solo or aggregate
        rows.append(dict(runs=n, steps_each=steps, aggregate_steps_per_s=aggregate, per_run_steps_per_s=aggregate / n,
                         ratio_to_solo=aggregate / solo, cap_mb=budget >> 20,
                         max_peak_mb=max(peak for *_, peak, _ in done) / 2**20))
    return rows


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


# Before the page's own scripts: every message from the server that carries the parameter count is noted with the
# tab's clock and the count it says, so a click's answer is timed twice: when it reached the tab (the server's part,
# plus the tab taking the message) and when the page showed it (plus drawing it, on the same busy cores).
ANSWER_SPY = r"""(() => {
  const Native = window.WebSocket, decoder = new TextDecoder();
  window.attnvizAnswers = [];
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', (event) => {
        const found = event.data instanceof ArrayBuffer &&
            decoder.decode(event.data).match(/([\d,]+) parameters \(the limit/);
        if (found) window.attnvizAnswers.push([performance.now(), found[1]]);
      });
    }
  };
})()"""

# In the page: click a d_model step button and wait (polling every 5 ms) until the parameter count the server
# writes under the settings changes. Returns [ms until shown, ms until the message saying it reached the tab],
# measured by the browser's own clock.
CLICK_AND_WAIT = r"""async (selector) => {
  const count = () => [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
      .map(e => e.textContent).find(t => t.includes('parameters (the limit')) || '';
  const before = count(), started = performance.now();
  document.querySelector(selector).click();
  return await new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (performance.now() - started > 60000) { clearInterval(timer); reject(new Error('no answer in 60 s')); }
      else if (count() && count() !== before) {
        clearInterval(timer);
        const shown = performance.now() - started, said = (count().match(/([\d,]+) parameters/) || [])[1];
        const message = (window.attnvizAnswers || []).find(([time, number]) => time >= started && number === said);
        resolve([shown, message ? message[0] - started : NaN]);
      }
    }, 5);
  });
}"""
STEP_BUTTON = '.st-key-train_d_model button[data-testid="stNumberInputStep{}"]'
START_BUTTON = ".st-key-train_start button"


def browser_processes():
    """Pids of the Chromium processes below this one (the browser, its renderers: one per tab or so), from /proc
    (Linux; elsewhere none)."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            name, fields = rest.rsplit(") ", 1)
        except (OSError, ValueError):  # a process that ended meanwhile
            continue
        children.setdefault(int(fields.split()[1]), []).append((int(pid), name))
    found, stack = [], [os.getpid()]
    while stack:
        for pid, name in children.get(stack.pop(), []):
            stack.append(pid)
            if name.startswith("chrom"):
                found.append(pid)
    return found


def autogroup(pid):
    """The scheduling group of a process ("/autogroup-532 nice 0" names group 532), or None without one."""
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().split()[0]
    except (OSError, IndexError):  # not Linux, autogroups off, or the process ended
        return None


def deprioritize(pids, nice, keep=()):
    """Lower processes `pids` to niceness `nice`, each, and their scheduling group unless a process of `keep` or this
    one shares it. Linux puts a process that starts a session, as Playwright does with each browser, into an
    autogroup of its own and splits the cores between groups before niceness counts: a process's own nice only
    counts inside its group (sched(7)). The group's nice is set in /proc/PID/autogroup."""
    kept = {autogroup(pid) for pid in (*keep, os.getpid())}
    for pid in pids:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, pid, nice)
        if autogroup(pid) not in kept:
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def click_latency(quick, n_tabs=10):
    """Rows: p50/p95/max milliseconds of a click on the Train live page with `n_tabs` tabs (sessions), each with a
    run going or queued, until the page shows the answer, and p50/p95 until the server's message with it reached the
    tab (`ANSWER_SPY`); clicks without an answer in 60 s, and tabs whose page the browser lost (Streamlit's
    frontend fails on a delta it cannot place and shows a blank page), with the first such error.

    The tabs' browser runs on the server's cores, and drawing ten tabs of live charts took more of them than the
    server did (measured with top: Chromium 110-145% of the 2 cores, the server and its training worker 42-72%).
    One row clicks in every tab of one browser at the server's priority: the whole class on this machine. The other
    (not in --quick) is a class as it is, each browser on a student's machine: two tabs are clicked (one trains, one
    waits in the queue), the other tabs load the server as before from a browser of their own at nice 19 (it and its
    scheduling group: `deprioritize`), so that their drawing takes only cores the server and the two tabs leave."""
    chromium = shutil.which("chromium")
    if chromium is None or importlib.util.find_spec("playwright") is None:
        return [dict(skipped="needs Debian's chromium (apt-get install chromium) and the playwright package")]
    return [click_latency_row(chromium, quick, n_tabs, watched, others_nice)
            for watched, others_nice in ([(n_tabs, 0)] if quick else [(n_tabs, 0), (2, 19)])]


def open_tab(browser, url, index, page_errors):
    """A tab on Train live whose first page errors go to `page_errors[index]`, with its run started."""
    from playwright.sync_api import expect
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.add_init_script(ANSWER_SPY)
    tab.on("pageerror", lambda error: page_errors.setdefault(index, str(error)))
    tab.on("console", lambda message: message.type == "error" and message.text.startswith("Error:") and
           page_errors.setdefault(index, message.text))  # what Streamlit's frontend logs as it gives up
    tab.goto(url)
    expect(start_button(tab)).to_be_enabled(timeout=120_000)
    start_button(tab).click()
    expect(tab.locator('[data-testid="stMetric"]').first).to_be_visible(timeout=120_000)  # its run panel
    return tab


def start_button(tab):
    """Train live's Start in `tab`: the first button of its element, as a user sees one. While the form refuses a
    setting, Start carries a help text and Streamlit's tooltip markup draws the button twice."""
    return tab.locator(START_BUTTON).first


def page_state(tab):
    """Whether the tab's Start is shown and enabled, whether its settings are open, its name box's value, the texts
    of the form's alerts and captions, the page's headings (the run panel's names its run) and the run panel's
    numbers, each read without waiting: what a failure message needs to say why."""
    from playwright.sync_api import Error as PlaywrightError
    name = tab.locator(".st-key-train_name input")
    try:
        texts = [element.inner_text() for element in
                 tab.locator('[data-testid="stExpander"] [data-testid="stAlert"], '
                             '[data-testid="stExpander"] [data-testid="stCaptionContainer"]').all()]
        headings = [heading.inner_text() for heading in tab.locator('[data-testid="stMain"] h3').all()]
        panel = [metric.inner_text().replace("\n", " ") for metric in tab.locator('[data-testid="stMetric"]').all()]
        settings_open = tab.locator('[data-testid="stExpander"] details[open]').count() > 0
        starts = tab.locator(START_BUTTON).all()
        return (f"Start visible {any(button.is_visible() for button in starts)}, enabled "
                f"{any(button.is_enabled() for button in starts)}, settings open {settings_open}, name box "
                f"{name.input_value() if name.count() else None!r}, messages {texts}, headings {headings}, run panel {panel}")
    except PlaywrightError as error:  # the page redrew under the reading, or is gone
        return f"the page could not be read: {error}"


def click_latency_row(chromium, quick, n_tabs, watched, others_nice):
    """One row of `click_latency` (`chromium`, a path): clicks in `watched` of the `n_tabs` tabs. When that is
    fewer, the clicked tabs train runs long enough to last the clicks (the first trains, the others are queued),
    and the other tabs, with the 30-second demo, are in a browser of their own at niceness `others_nice`."""
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
    clicks = (4 if quick else 12) * n_tabs
    long_run = "" if watched == n_tabs else "?steps=100000&time_budget=900"
    page_errors = {}  # tab index -> the frontend's first uncaught error
    with tempfile.TemporaryDirectory() as user_dir, streamlit_server({"ATTNVIZ_USER_DIR": user_dir}) as url, \
            sync_playwright() as playwright:
        launch = functools.partial(playwright.chromium.launch, executable_path=chromium, args=CHROMIUM_ARGS,
                                   headless=True)
        browsers = [launch()]  # the clicked tabs' browser, then the others'
        tabs = [open_tab(browsers[0], f"{url}/train{long_run}", i, page_errors) for i in range(watched)]
        if watched < n_tabs:
            clicked_processes = set(browser_processes())
            browsers.append(launch())
            tabs += [open_tab(browsers[1], f"{url}/train", i, page_errors) for i in range(watched, n_tabs)]
            deprioritize(set(browser_processes()) - clicked_processes, others_nice, keep=clicked_processes)
        for index, tab in enumerate(tabs[:watched]):  # open the settings again to click in them
            try:
                tab.locator('[data-testid="stExpander"] summary').first.click(timeout=120_000)
                expect(tab.locator(STEP_BUTTON.format("Up"))).to_be_visible(timeout=120_000)
            except (PlaywrightError, AssertionError):
                page_errors.setdefault(index, "the page went blank before the clicks")
        times, unanswered = [], []  # unanswered: what the page said, for each click without an answer
        for i in range(clicks):
            index = i % watched
            if index in page_errors:  # a blank page: nothing left to click
                continue
            try:
                up = (i // watched) % 2 == 0
                times.append(tabs[index].evaluate(CLICK_AND_WAIT, STEP_BUTTON.format("Up" if up else "Down")))
            except PlaywrightError:
                unanswered.append(f"tab {index} at {tabs[index].url}: {page_state(tabs[index])}")
        for browser in browsers:
            browser.close()
    shown = sorted(shown_ms for shown_ms, _ in times)
    reached = sorted(reached_ms for _, reached_ms in times if not math.isnan(reached_ms))  # NaN: the spy missed it
    return dict(tabs=n_tabs, clicked_tabs=watched, others_nice=others_nice, clicks=len(times),
                p50_ms=percentile(shown, 0.5), p95_ms=percentile(shown, 0.95), max_ms=percentile(shown, 1.0),
                reached_p50_ms=percentile(reached, 0.5), reached_p95_ms=percentile(reached, 0.95),
                reached_missed=len(times) - len(reached), unanswered=len(unanswered), lost_tabs=len(page_errors),
                first_page_error=next(iter(page_errors.values()), "")[:80],
                first_unanswered=next(iter(unanswered), "")[:300], goal="p95 < 500 ms, nothing lost")


def percentile(values, fraction):
    """The value `fraction` of the way up sorted `values` (the nearest rank), or NaN if there are none."""
    return values[round(fraction * (len(values) - 1))] if values else float("nan")
