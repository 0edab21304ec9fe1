"""Temporary folders of our processes: kept while one lives, swept after a kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile

import pytest

from napari_digits import scratch

pytestmark = pytest.mark.skipif(scratch.fcntl is None, reason="no flock (Windows)")

HOLDER = """
import sys, time
from napari_digits import scratch
folder = scratch.make("test") if sys.argv[1] == "make" else sys.argv[1]
scratch.hold(folder)
print(folder, flush=True)
time.sleep(120)
"""


def holder(root, what: str = "make") -> tuple[subprocess.Popen, str]:
    """A process that holds a folder (a new one, or ``what``) until killed."""
    env = os.environ | {"TMPDIR": str(root)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, what], stdout=subprocess.PIPE, text=True, env=env
    )
    return process, process.stdout.readline().strip()


def killed(process: subprocess.Popen) -> None:
    process.kill()
    process.wait(30)
    process.stdout.close()


def test_a_folder_is_swept_once_every_process_holding_it_was_killed(tmp_path):
    viewer, folder = holder(tmp_path)
    engine, _ = holder(tmp_path, folder)  # the folder made by one, held by both
    (tmp_path / folder / "__autograph_generated_file1.py").write_text("x = 1\n")
    try:
        assert os.path.dirname(folder) == str(tmp_path)
        killed(viewer)  # the engine still lives: kept
        assert scratch.sweep(str(tmp_path)) == [] and os.path.isdir(folder)
    finally:
        killed(engine)
    assert scratch.sweep(str(tmp_path)) == [folder]
    assert not os.path.exists(folder)


def test_a_sweep_leaves_whatever_is_not_a_dead_folder_of_ours(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    mine = scratch.make("test")  # held by this process
    bare = tmp_path / "napari-digits-test-abcd1234"  # no lock file
    bare.mkdir()
    user = tmp_path / "napari-digits-notes"  # a user's, named close to ours
    user.mkdir()
    (user / scratch.ALIVE).write_text("")
    like = tmp_path / "napari-digits-test-efgh5678"  # a file, not a folder
    like.write_text("")
    try:
        assert scratch.sweep(str(tmp_path)) == []
        assert {p.name for p in tmp_path.iterdir()} == {
            os.path.basename(mine),
            bare.name,
            user.name,
            like.name,
        }
    finally:
        scratch.remove(mine)
    assert not os.path.exists(mine)


COMMAND = """
import os, signal, sys, tempfile
from napari_digits import scratch
folder = scratch.use_own()
open(os.path.join(tempfile.gettempdir(), "generated.py"), "w").close()
print(folder, flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def command(root, end: str) -> tuple[int, str]:
    env = os.environ | {"TMPDIR": str(root)}
    run = subprocess.run(
        [sys.executable, "-c", COMMAND, end],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return run.returncode, run.stdout.strip()


def test_a_command_s_folder_goes_at_exit_or_with_the_next_command(tmp_path):
    rc, folder = command(tmp_path, "exit")
    assert rc == 0 and folder.startswith(str(tmp_path / "napari-digits-command-"))
    assert list(tmp_path.iterdir()) == []  # removed at exit

    rc, killed_folder = command(tmp_path, "kill")
    assert rc == -signal.SIGKILL
    assert set(os.listdir(killed_folder)) == {scratch.ALIVE, "generated.py"}
    rc, _ = command(tmp_path, "exit")  # the next command sweeps it
    assert rc == 0 and list(tmp_path.iterdir()) == []


def test_a_command_goes_on_where_no_folder_can_be_made(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_folder))
    monkeypatch.setenv("TMPDIR", "unchanged")
    assert scratch.use_own() == str(not_a_folder)
    assert os.environ["TMPDIR"] == "unchanged" and not_a_folder.is_file()
