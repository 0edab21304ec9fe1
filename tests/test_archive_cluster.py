"""Reading on a real Dask LocalCluster (worker processes with TensorFlow).

The test process is the Dask client (and scheduler); TensorFlow runs only in
the workers. Sequential reference rows come from ``napari-digits read`` in
a subprocess.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from napari_digits.results import read_csv
from test_cli_read import napari_digits, tiny_pages

PAGES = 6


@pytest.fixture(scope="module")
def scans(tmp_path_factory, mnist_dir) -> Path:
    folder = tmp_path_factory.mktemp("archive") / "scans"
    tiny_pages(folder, PAGES)
    return folder


@pytest.fixture(scope="module")
def reference(scans) -> list:
    out = scans.parent / "sequential.csv"
    done = napari_digits("read", str(scans), "--out", str(out))
    assert done.returncode == 0, done.stderr
    return read_csv(out)


def test_no_scheduler_is_one_line_within_seconds(tmp_path):
    page = tmp_path / "p.png"
    page.write_bytes(b"")
    with socket.socket() as s:  # a free port: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    done = napari_digits(
        "read",
        str(page),
        "--out",
        str(tmp_path / "r.csv"),
        "--scheduler",
        f"tcp://127.0.0.1:{port}",
    )
    assert time.monotonic() - start < 30
    assert done.returncode == 1
    assert done.stderr.startswith(
        "napari-digits read: error: no Dask scheduler answers at"
    )
    assert done.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png"]


def test_workers_write_parquet_with_the_sequential_rows(scans, reference, tmp_path):
    out = tmp_path / "r.parquet"
    done = napari_digits("read", str(scans), "--out", str(out), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "page/s" in done.stderr
    assert read_csv(out) == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet"]


def test_a_result_lost_with_its_worker_is_computed_again(tmp_path):
    """A page read on a worker that dies before its result is fetched (another
    page killed it) is read again, not skipped as failed."""
    import os
    import signal

    import cloudpickle

    import _archive_tasks
    from napari_digits.archive import cluster
    from napari_digits.archive.pages import PageJob

    cloudpickle.register_pickle_by_value(_archive_tasks)
    ours = os.environ.get("TMPDIR")
    with cluster.connect(workers=2) as client:
        [tmp] = set(client.run(tempfile.gettempdir).values())  # the cluster's own
        assert os.environ.get("TMPDIR") == ours  # this process's is untouched
        assert Path(tmp).name.startswith("napari-digits-workers-")
        future = client.submit(_archive_tasks.slowly, 3, pure=False)
        assert future.result() == 3
        [holder] = client.who_has(future)[future.key]
        pid = client.run(os.getpid, workers=[holder])[holder]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while holder in client.scheduler_info()["workers"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert future.status != "finished"  # computed again, for 2 s
        job = PageJob(0, str(tmp_path / "p.png"))
        assert cluster._outcome(future, job) == (3, True)
    assert not Path(tmp).exists()  # with the killed worker's files
    assert os.environ.get("TMPDIR") == ours


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_a_page_that_kills_twice_is_skipped(
    scans, reference, tmp_path
):
    import cloudpickle

    import _archive_tasks
    from napari_digits.archive import cluster
    from napari_digits.archive.journal import Journal
    from napari_digits.archive.pages import ReadOptions, find_pages, plan_jobs
    from napari_digits.current_model import shipped_model_path

    cloudpickle.register_pickle_by_value(_archive_tasks)
    (scans / "kill-once").write_text("page001.png page004.png")
    poison = tmp_path / "poison.png"
    shutil.copy(scans / "page000.png", poison)
    shutil.copy(scans / "kill-once", tmp_path / "kill-once")
    jobs = plan_jobs([*find_pages([scans]), poison])
    out = tmp_path / "r.csv"
    journal = Journal.open(out, settings={})
    errors = {}
    with cluster.connect(workers=2) as client:
        assert cluster.load_model(client, str(shipped_model_path())) == 2
        # one TensorFlow thread a worker thread, as Dask does for numpy's libraries
        assert set(client.run(_archive_tasks.tf_threads).values()) == {(1, 1)}
        samplers = client.run(_archive_tasks.dashboard_samplers).values()
        assert set(samplers) == {(False, "1s")}
        for result in cluster.stream(
            client, jobs, ReadOptions(), task=_archive_tasks.killing_task
        ):
            if result.error:
                errors[Path(result.file).name] = result.error
            else:
                journal.append(result.file, result.pages, result.rows)
    order = {job.path: job.order for job in jobs}
    journal.finalise(out, order.get)
    assert errors == {"poison.png": "its worker died twice (killed, or out of memory)"}
    assert (scans / "page001.png.killed").exists()  # it was killed mid-page
    assert read_csv(out) == reference
