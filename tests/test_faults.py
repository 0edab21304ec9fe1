"""Fault injection in subprocesses: kill -9 mid-write, a full disk, a read-only folder.

Each fault hits :func:`napari_digits.io.atomic_path` itself and the writers of
``napari-digits filter`` and ``filters``; each test asserts that the file
that was there before is intact and that no temporary file is left.

* kill -9: the child is killed while its temporary file is half written. A
  killed process cannot remove its temporary file; the next write of the same
  file removes it (its writer's process id is in its name).
* full disk: ``RLIMIT_FSIZE`` in the child (Python ignores SIGXFSZ, so the
  write fails with EFBIG, as it would with ENOSPC).
* read-only folder: mode 555; as root, the child runs without the capability
  to override file permissions (``setpriv``).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from napari_digits import io

SRC = str(Path(io.__file__).resolve().parents[1])


def child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=SRC, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def run(args: list[str], *, fsize: int | None = None, read_only: bool = False):
    """Run ``python ARGS`` with a file-size limit or without root's override."""

    def limit() -> None:
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    prefix: list[str] = []
    if read_only and os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root without setpriv cannot be kept out of a folder")
        prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    return subprocess.run(
        [*prefix, sys.executable, *args],
        env=child_env(),
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=300,
    )


def cli(*args: str, **kwargs):
    return run(["-m", "napari_digits", *args], **kwargs)


@pytest.fixture
def folder():
    """A folder others may read (a setpriv child is still root, but say so)."""
    path = Path(tempfile.mkdtemp(prefix="faults-"))
    path.chmod(0o755)
    yield path
    path.chmod(0o755)
    shutil.rmtree(path, ignore_errors=True)


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def one_error_line(stderr: str) -> bool:
    # TensorFlow's own start-up lines are another matter (issue 8, section 6)
    lines = [line for line in stderr.splitlines() if line.startswith("napari-digits")]
    return len(lines) == 1 and "error:" in lines[0] and "Traceback" not in stderr


WRITER = """
import sys, time
from napari_digits import io
with io.atomic_path(sys.argv[1]) as tmp, open(tmp, "wb") as f:
    for i in range(int(sys.argv[2])):
        f.write(b"n" * 2**20)
        f.flush()
        if i == 8:
            print("writing", flush=True)
            time.sleep(60)  # killed here, half written
"""


# -- io.atomic_path itself ---------------------------------------------------


def test_atomic_path_killed_mid_write_keeps_the_old_file(folder):
    target = folder / "data.bin"
    target.write_bytes(b"old" * 1000)
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), "64"],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "writing"
    [leftover] = temporaries(folder)
    assert (folder / leftover).stat().st_size >= 8 * 2**20
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert target.read_bytes() == b"old" * 1000
    with io.atomic_open(target, "wb") as f:  # the next write sweeps the leftover
        f.write(b"new")
    assert target.read_bytes() == b"new" and temporaries(folder) == []


def test_atomic_path_on_a_full_disk_keeps_the_old_file(folder):
    target = folder / "data.bin"
    target.write_bytes(b"old" * 1000)
    done = run(["-c", WRITER.replace("if i == 8", "if False"), str(target), "8"],
               fsize=2**20)  # fmt: skip
    assert done.returncode == 1 and "File too large" in done.stderr
    assert target.read_bytes() == b"old" * 1000
    assert temporaries(folder) == []


def test_atomic_path_in_a_read_only_folder(folder):
    target = folder / "data.bin"
    target.write_bytes(b"old")
    folder.chmod(0o555)
    code = (
        "import sys; from napari_digits import io\n"
        "try:\n    io.check_output(sys.argv[1])\n"
        "except io.OutputError as e:\n    print('refused:', e)\n"
        "with io.atomic_open(sys.argv[1], 'wb') as f:\n    f.write(b'new')\n"
    )
    done = run(["-c", code, str(target)], read_only=True)
    assert "refused:" in done.stdout and "not writable" in done.stdout
    assert done.returncode == 1 and "PermissionError" in done.stderr
    assert target.read_bytes() == b"old" and temporaries(folder) == []


# -- napari-digits filter ------------------------------------------------------


@pytest.fixture
def grey(folder) -> Path:
    path = folder / "in.npy"
    np.save(path, np.random.default_rng(0).random((200, 300)).astype(np.float32))
    return path


@pytest.mark.parametrize("where", ["same path", "same file by another name"])
def test_filter_refuses_to_write_over_its_input(grey, where):
    before = grey.read_bytes()
    out = grey if where == "same path" else grey.parent / "." / grey.name
    done = cli("filter", str(grey), "--kernel", "gaussian", "--out", str(out))
    assert done.returncode == 1 and "is an input" in done.stderr
    assert one_error_line(done.stderr)
    assert grey.read_bytes() == before and temporaries(grey.parent) == []


@pytest.mark.parametrize(
    ("out", "message"),
    [("sub", "is a folder"), ("missing/out.npy", "does not exist")],
)
def test_filter_refuses_a_bad_out_before_reading(folder, grey, out, message):
    (folder / "sub").mkdir()
    done = cli("filter", str(grey), "--kernel", "sobel", "--out", str(folder / out))
    assert done.returncode == 1 and message in done.stderr
    assert one_error_line(done.stderr)


def test_filter_in_a_read_only_folder_is_one_line_before_work(folder, grey):
    out = folder / "out" / "old.npy"
    out.parent.mkdir()
    np.save(out, np.ones(3))
    out.parent.chmod(0o555)
    done = cli("filter", str(grey), "--kernel", "sobel", "--out", str(out),
               read_only=True)  # fmt: skip
    assert done.returncode == 1 and "not writable" in done.stderr
    assert one_error_line(done.stderr)
    np.testing.assert_array_equal(np.load(out), np.ones(3))
    assert temporaries(out.parent) == []


def test_filter_on_a_full_disk_keeps_the_old_output(folder, grey):
    out = folder / "old.tif"
    out.write_bytes(b"an old result")
    done = cli("filter", str(grey), "--kernel", "sobel", "--out", str(out),
               fsize=64 * 1024)  # fmt: skip
    assert done.returncode == 1 and "could not write" in done.stderr
    assert one_error_line(done.stderr)
    assert out.read_bytes() == b"an old result"
    assert temporaries(folder) == []


def test_filter_killed_mid_write_keeps_the_old_output(folder):
    big = folder / "big.npy"
    np.save(big, np.zeros((4000, 6000), np.float32))  # a 96 MB result to write
    out = folder / "old.npy"
    np.save(out, np.arange(10))
    child = subprocess.Popen(
        [sys.executable, "-m", "napari_digits", "filter", str(big), "--kernel",
         "box", "--out", str(out)],
        env=child_env(),
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    half = None
    deadline = time.monotonic() + 120
    while half is None and child.poll() is None and time.monotonic() < deadline:
        for name in temporaries(folder):
            with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
                if 2**20 < (folder / name).stat().st_size < 4000 * 6000 * 4:
                    half = name
    child.kill()
    child.wait(timeout=30)
    assert half is not None, "the write ended before it could be killed"
    np.testing.assert_array_equal(np.load(out), np.arange(10))
    again = cli("filter", str(big), "--kernel", "identity", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert temporaries(folder) == []  # the killed write's leftover is gone


# -- napari-digits filters -----------------------------------------------------


def test_filters_refuses_its_model_as_out_a_folder_and_a_read_only_one(folder):
    from napari_digits.current_model import shipped_model_path

    model = folder / "model.keras"
    shutil.copy(shipped_model_path(), model)
    before = model.read_bytes()
    done = cli("filters", str(model), "--out", str(model))
    assert done.returncode == 1 and "is an input" in done.stderr
    assert one_error_line(done.stderr) and model.read_bytes() == before
    done = cli("filters", str(model), "--out", str(folder))
    assert done.returncode == 1 and "is a folder" in done.stderr
    (folder / "ro").mkdir(mode=0o555)
    done = cli("filters", str(model), "--out", str(folder / "ro" / "f.png"),
               read_only=True)  # fmt: skip
    assert done.returncode == 1 and "not writable" in done.stderr
    assert one_error_line(done.stderr)
    assert "tensorflow" not in done.stderr.lower()  # refused before loading it


def test_filters_on_a_full_disk_keeps_the_old_png(folder):
    out = folder / "filters.png"
    out.write_bytes(b"an old png")
    done = cli("filters", "--out", str(out), "--zoom", "20", fsize=512)
    assert done.returncode == 1 and "could not write" in done.stderr
    assert one_error_line(done.stderr)
    assert out.read_bytes() == b"an old png" and temporaries(folder) == []
