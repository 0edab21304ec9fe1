"""Archive benchmark: A4 pages at 300 dpi read sequentially and on Dask.

Run with ``MNIST_DIR=... .venv/bin/python bench/run.py archive``. Rows:

- pages a second of the reading phase (after start-up) and start-up seconds,
  for the sequential read, ``--workers 1``, ``--workers 2``, and an external
  scheduler (``dask scheduler`` and two ``dask worker`` processes on
  127.0.0.1); each run in its own process, through the same journal as
  ``napari-digits read``; peak memory (max RSS) of the client and of each
  worker;
- scaling efficiency from 1 to 2 workers (target >= 0.9): the median of
  ``BENCH_REPEATS`` (default 3) pairs of ``--workers 1`` and ``--workers 2``
  runs, interleaved so that both runs of a pair see the same machine (one
  run varies by a few percent); and the best batch rate (target >= 2
  pages/s);
- where a page's time goes (load, find digits, classify), in one process;
- the scheduler's cost per task (empty tasks) and the journal's cost per
  page, and from them a projection for 1 million pages on 100 workers.

Pages: ``BENCH_PAGES`` (default 200) files made of ``BENCH_DISTINCT``
(default 10) generated pages of about 500 MNIST test digits each, every
copy shifted by a few pixels (generating an A4 page takes about 15-30 s;
reading cost does not depend on which digits are drawn). They are made once
into ``BENCH_CACHE`` (default ``~/.cache/napari-digits/bench-archive``),
outside the repository.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_scan import row  # the same measure/value/unit/target/note table

REPO = Path(__file__).resolve().parents[1]
A4 = (3508, 2480)  # 300 dpi
A4_DIGIT_HEIGHT = 64
PAGES = int(os.environ.get("BENCH_PAGES", "200"))
DISTINCT = int(os.environ.get("BENCH_DISTINCT", "10"))
#: pairs of --workers 1 and --workers 2 runs, interleaved (the median is kept)
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
CACHE = Path(
    os.environ.get("BENCH_CACHE", Path.home() / ".cache/napari-digits/bench-archive")
)


# ---------------------------------------------------------------- pages


def make_pages(count: int = PAGES, distinct: int = DISTINCT) -> Path:
    """Write ``count`` A4 JPEG pages (once) and return their folder."""
    folder = CACHE / f"a4-300dpi-{count}-of-{distinct}"
    done = folder / "complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    from napari_digits.data import load_mnist
    from napari_digits.synthetic import make_page

    mnist = load_mnist()
    for seed in range(min(distinct, count)):
        page = make_page(
            mnist.x_test,
            mnist.y_test,
            shape=A4,
            digit_height=A4_DIGIT_HEIGHT,
            max_digits=500,
            seed=seed,
            jpeg_quality=None,
        ).image
        for k in range(seed, count, distinct):
            shift = (k // distinct) * 3
            shifted = np.roll(page, (shift, shift), axis=(0, 1))
            Image.fromarray(shifted).save(folder / f"page{k:05d}.jpg", quality=85)
    done.touch()
    return folder


# ---------------------------------------------------------------- one run (child)


def _max_rss_mib() -> float:
    """Peak resident memory of this process (MiB).

    Linux keeps ``ru_maxrss`` across ``exec``: a child of a parent that had
    just drawn the pages reported the parent's peak. ``VmHWM`` is this
    process's own.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, folder: str, out: str, scheduler: str | None = None) -> dict:
    """Read every page of ``folder`` in this process as ``mode``; return timings."""
    from napari_digits.archive import cluster
    from napari_digits.archive.pages import ReadOptions, find_pages, plan_jobs
    from napari_digits.current_model import shipped_model_path

    model, options = str(shipped_model_path()), ReadOptions()
    jobs = plan_jobs(find_pages([folder]))
    start = time.perf_counter()
    record: dict = {}
    if mode == "sequential":
        from napari_digits.cli.read import _predictor

        predict = _predictor(model)  # as `napari-digits read` loads it
        record["startup_s"] = time.perf_counter() - start
        record.update(_journal_run(jobs, lambda todo: _local(todo, predict), out))
        record["workers_max_rss_mib"] = []
    else:
        workers = None if scheduler else int(mode.split("-")[1])
        with cluster.connect(workers=workers, scheduler=scheduler) as client:
            cluster.load_model(client, model)
            record["startup_s"] = time.perf_counter() - start
            stream = lambda todo: cluster.stream(client, todo, options)  # noqa: E731
            record.update(_journal_run(jobs, stream, out))
            rss = client.run(_max_rss_mib)
            record["workers_max_rss_mib"] = sorted(rss.values())
            if mode == "scheduler":
                record.update(_scheduler_overhead(client))
    record["client_max_rss_mib"] = _max_rss_mib()
    record["tensorflow_in_client"] = "tensorflow" in sys.modules
    return record


def _local(todo, predict):
    from napari_digits.archive.pages import ReadOptions, read_job

    return (read_job(job, predict, ReadOptions()) for job in todo)


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by this process and by each of its children."""
    import psutil

    me = psutil.Process()
    used = {"client": sum(me.cpu_times()[:2])}
    for proc in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            used[f"{proc.pid} {proc.name()}"] = sum(proc.cpu_times()[:2])
    return used


def _journal_run(jobs, read, out: str) -> dict:
    """Read through the journal as ``napari-digits read`` does; time each phase."""
    from napari_digits.archive.journal import Journal

    journal = Journal.open(out, settings={})
    cpu = _cpu_seconds()
    start = time.perf_counter()
    digits = skipped = 0
    for result in read(jobs):
        if result.error:
            skipped += 1
            continue
        journal.append(result.file, result.pages, result.rows)
        digits += len(result.rows)
    read_s = time.perf_counter() - start
    used = {k: v - cpu.get(k, 0.0) for k, v in _cpu_seconds().items()}
    order = {job.path: job.order for job in jobs}
    start = time.perf_counter()
    rows = journal.finalise(out, order.get)
    return {
        "pages": len(jobs) - skipped,
        "digits": digits,
        "read_s": read_s,
        "pages_per_s": (len(jobs) - skipped) / read_s,
        "finalise_s": time.perf_counter() - start,
        "rows": rows,
        "cpu_s": used,
    }


def _noop(job, options):
    from napari_digits.archive.pages import FileResult

    return FileResult(job.order, job.path)


def _scheduler_overhead(client, tasks: int = 1000) -> dict:
    """Seconds a task costs the client and the scheduler (empty tasks)."""
    from napari_digits.archive import cluster
    from napari_digits.archive.pages import PageJob, ReadOptions

    jobs = [PageJob(k, f"page{k}") for k in range(tasks)]
    start = time.perf_counter()
    for _ in cluster.stream(client, jobs, ReadOptions(), task=_noop, window=256):
        pass
    return {"empty_tasks_per_s": tasks / (time.perf_counter() - start)}


# ---------------------------------------------------------------- parent


def _run_child(mode: str, folder: Path, scheduler: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        args = [sys.executable, __file__, mode, str(folder), str(Path(tmp) / "r.csv")]
        done = subprocess.run(
            [*args, *([scheduler] if scheduler else [])],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=3600,
        )
    if done.returncode:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    src = str(REPO / "src")
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **_dask_env(),
    }


def _dask_env() -> dict[str, str]:
    """The LocalCluster's Dask settings as variables, for `dask scheduler`/`worker`.

    The same settings the README gives for a cluster of one's own.
    """
    from napari_digits.archive.cluster import CONNECT_TIMEOUT, _dask_config

    return {
        "DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(value)
        for key, value in _dask_config(CONNECT_TIMEOUT).items()
    }


def _external(folder: Path) -> dict:
    """Start ``dask scheduler`` and two ``dask worker`` on loopback; read there."""
    dask = str(Path(sys.executable).with_name("dask"))
    with tempfile.TemporaryDirectory() as tmp:
        file = str(Path(tmp) / "scheduler.json")
        common = ["--no-dashboard"]
        procs = [
            subprocess.Popen(
                [
                    dask,
                    "scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--scheduler-file",
                    file,
                    *common,
                ],
                env=_env(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
        try:
            address = _address(file)
            for _ in range(2):
                procs.append(
                    subprocess.Popen(
                        [
                            dask,
                            "worker",
                            address,
                            "--nthreads",
                            "1",
                            "--host",
                            "127.0.0.1",
                            *common,
                        ],
                        env=_env(),
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
            return _run_child("scheduler", folder, address)
        finally:
            for proc in reversed(procs):
                proc.terminate()
                proc.wait(timeout=60)


def _address(file: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(file).exists():
            try:
                return json.loads(Path(file).read_text())["address"]
            except (ValueError, KeyError):
                pass
        time.sleep(0.2)
    raise RuntimeError("dask scheduler did not start")


def profile(folder: Path, count: int = 5) -> dict:
    """Median seconds a page spends loading, finding digits and classifying."""
    code = f"""
import json, statistics, time, numpy as np
from napari_digits.io import read_pages
from napari_digits.scan import find_digits
from napari_digits.cli._engine import engine_models
from napari_digits.current_model import shipped_model_path
models, model = engine_models(), str(shipped_model_path())
models.predict(model, np.zeros((1, 28, 28), np.uint8))
t = {{"load_s": [], "find_digits_s": [], "classify_s": []}}
for path in sorted(__import__("pathlib").Path({str(folder)!r}).glob("*.jpg"))[:{count}]:
    a = time.perf_counter(); page = read_pages(path)[0]
    b = time.perf_counter(); scan = find_digits(page)
    c = time.perf_counter(); models.predict(model, scan.crops)
    d = time.perf_counter()
    for k, v in zip(t, (b - a, c - b, d - c)): t[k].append(v)
print(json.dumps({{k: statistics.median(v) for k, v in t.items()}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=_env()
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _journal_cost(appends: int = 500) -> float:
    """Seconds to journal one page of 500 rows, pages coming at full speed."""
    from napari_digits.archive.journal import Journal
    from napari_digits.results import DigitRow

    rows = [
        DigitRow("page.jpg", k, 1, k, 1, 0, 0, 64, 40, 32.0, 20.0, 3, 0.99, 5, 0.01)
        for k in range(500)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal.open(Path(tmp) / "r.csv", settings={})
        start = time.perf_counter()
        for k in range(appends):
            journal.append(f"page{k}.jpg", 1, rows)
        cost = (time.perf_counter() - start) / appends
        journal.discard()
    return cost


def _client_bytes_per_page(count: int = 20000) -> float:
    """Client memory a file costs before it is read (its path and job)."""
    import tracemalloc

    from napari_digits.archive.pages import plan_jobs

    paths = [
        Path(f"/archive/registry-{k // 1000:04d}/page{k:07d}.jpg") for k in range(count)
    ]
    tracemalloc.start()
    jobs = plan_jobs(paths)
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del jobs
    return size / count


def run() -> list[dict]:
    folder = make_pages()
    sequential = _run_child("sequential", folder)
    pairs = [  # interleaved, so that both see the same machine
        (_run_child("workers-1", folder), _run_child("workers-2", folder))
        for _ in range(REPEATS)
    ]
    ratios = [two["pages_per_s"] / (2 * one["pages_per_s"]) for one, two in pairs]
    median = sorted(range(REPEATS), key=ratios.__getitem__)[REPEATS // 2]
    runs = {
        "sequential": sequential,
        "--workers 1": pairs[median][0],
        "--workers 2": pairs[median][1],
        "scheduler + 2 workers": _external(folder),
    }
    rows = []
    for name, r in runs.items():
        rss = ", ".join(f"{v:.0f}" for v in r["workers_max_rss_mib"]) or "-"
        rows.append(
            row(
                f"{name}: reading",
                r["pages_per_s"],
                "pages/s",
                ">= 2" if name == "--workers 2" else "",
                f"{r['pages']} pages, {r['digits']} digits in {r['read_s']:.1f} s; "
                f"start-up {r['startup_s']:.1f} s; finalise {r['finalise_s']:.2f} s; "
                f"peak RSS client {r['client_max_rss_mib']:.0f} MiB, workers {rss} "
                f"MiB; TensorFlow in client: {r['tensorflow_in_client']}; "
                f"{_cpu_note(r)}",
            )
        )
    one, two = runs["--workers 1"], runs["--workers 2"]
    efficiency = two["pages_per_s"] / (2 * one["pages_per_s"])
    every = ", ".join(f"{r:.3f}" for r in ratios)
    rows.append(
        row(
            "scaling 1 -> 2 workers",
            efficiency,
            "of linear",
            ">= 0.9",
            f"the median of {REPEATS} interleaved pairs of runs ({every}); "
            "the rows of --workers 1 and 2 are that pair's",
        )
    )
    cost = profile(folder)
    per_page = sum(cost.values())
    for key, value in cost.items():
        rows.append(
            row(f"one page: {key[:-2]}", value, "s", "", "median of 5, one process")
        )
    rows.extend(_projection(runs, one, per_page))
    return rows


def _cpu_note(run: dict) -> str:
    """CPU a page of the client (with a LocalCluster's scheduler) and workers."""
    used = dict(run["cpu_s"])
    client = used.pop("client")
    workers = sum(used.values())
    pages = max(run["pages"], 1)
    busy = (client + workers) / run["read_s"]
    return (
        f"CPU a page: client {client / pages * 1000:.0f} ms, workers "
        f"{workers / pages * 1000:.0f} ms ({busy:.2f} cores busy)"
    )


def _projection(runs, one, per_page) -> list[dict]:
    """1 million pages on 100 workers from the measured costs."""
    worker_rate = one["pages_per_s"]  # one worker process on its own core
    scheduler_rate = runs["scheduler + 2 workers"]["empty_tasks_per_s"]
    journal_s = _journal_cost()
    demand = 100 * worker_rate
    limit = min(demand, scheduler_rate, 1 / journal_s)
    bound = {
        demand: "the workers' CPU",
        scheduler_rate: "the scheduler and client",
        1 / journal_s: "the client's journal (fsync a page)",
    }[limit]
    pages = 1_000_000
    finalise_s = one["finalise_s"] / max(one["pages"], 1) * pages
    hours = (pages / limit + finalise_s) / 3600
    per_page_bytes = _client_bytes_per_page()
    return [
        row(
            "client memory a file in the list",
            per_page_bytes,
            "bytes",
            "",
            f"{per_page_bytes * pages / 2**20:.0f} MiB for 1M files (paths, order)",
        ),
        row(
            "scheduler + client, empty tasks",
            scheduler_rate,
            "tasks/s",
            "",
            "streamed like pages, 256 in flight, 2 workers on loopback",
        ),
        row(
            "journal, one page of 500 rows",
            journal_s * 1000,
            "ms",
            "",
            "JSON line, fsync at most every 50 ms",
        ),
        row(
            "projection: 1M pages, 100 workers",
            hours,
            "hours",
            "",
            f"{demand:.0f} pages/s asked by 100 workers at {worker_rate:.2f}; "
            f"scheduler {scheduler_rate:.0f} tasks/s; journal {1 / journal_s:.0f} "
            f"pages/s; finalise {finalise_s / 3600:.1f} h; bound by {bound}; "
            f"about {pages * 500 * 100 / 1e9:.0f} GB of CSV",
        ),
    ]


if __name__ == "__main__":
    scheduler = sys.argv[4] if len(sys.argv) > 4 else None
    print(json.dumps(child(sys.argv[1], sys.argv[2], sys.argv[3], scheduler)))
