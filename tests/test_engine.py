"""The engine process: a real spawned child, talked to through the protocol."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from napari_digits import scratch
from napari_digits.current_model import shipped_model_path
from napari_digits.engine import protocol as p
from napari_digits.engine.client import (
    Engine,
    EngineDied,
    EngineError,
    EngineTimeout,
    get_engine,
)


@pytest.fixture
def fresh_engine():
    """An engine of its own, for tests that kill or hang it."""
    engine = Engine("test")
    yield engine
    engine.shutdown()


def test_ping_answers_with_the_engine_pid_in_another_process(engine):
    pid = engine.call(p.Ping())
    assert pid == engine.pid
    assert pid != os.getpid()
    assert engine.alive
    assert engine.call(p.Ping()) == pid  # kept warm


def test_get_engine_is_one_engine_per_role(engine):
    assert get_engine() is engine
    assert get_engine("training") is get_engine("training")
    assert get_engine("training") is not engine


def test_list_devices_runs_tensorflow_in_the_engine_only(engine):
    devices = engine.call(p.ListDevices())
    assert any(d.kind == "CPU" for d in devices)
    assert all(isinstance(d, p.DeviceInfo) for d in devices)
    assert "tensorflow" not in sys.modules


def test_an_exception_in_the_engine_is_an_engine_error(engine):
    pid = engine.call(p.Ping())
    with pytest.raises(EngineError, match="does not know the request 'str'") as info:
        engine.call("not a request")
    assert info.value.error_type == "TypeError"
    assert engine.call(p.Ping()) == pid  # the loop survived


def test_events_end_with_the_result(engine):
    events = list(engine.events(p.Ping()))
    assert events == [p.Result(engine.pid)]


def test_sigkill_mid_request_is_engine_died_then_a_fresh_engine(fresh_engine):
    first = fresh_engine.call(p.Ping())
    os.kill(first, signal.SIGSTOP)  # hold the engine inside the next request
    killer = threading.Timer(0.5, os.kill, (first, signal.SIGKILL))
    killer.start()
    with pytest.raises(EngineDied, match="SIGKILL"):
        fresh_engine.call(p.Ping(), timeout=60)
    killer.join()
    assert not fresh_engine.alive
    second = fresh_engine.call(p.Ping())
    assert second != first and fresh_engine.alive


def test_a_silent_engine_times_out_and_is_replaced(fresh_engine):
    first = fresh_engine.call(p.Ping())
    os.kill(first, signal.SIGSTOP)  # hung: it will never answer
    with pytest.raises(EngineTimeout, match=r"sent nothing for 0\.5 s"):
        fresh_engine.call(p.Ping(), timeout=0.5)
    assert fresh_engine.pid is None
    assert fresh_engine.call(p.Ping()) != first


def test_shutdown_ends_the_process_and_the_next_request_restarts(fresh_engine):
    first = fresh_engine.call(p.Ping())
    fresh_engine.shutdown()
    assert not fresh_engine.alive and fresh_engine.pid is None
    assert fresh_engine.call(p.Ping()) != first


@pytest.fixture
def system_tmp(tmp_path, monkeypatch):
    """An empty folder as the system's temporary folder, for this process."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", None)
    return folder


def test_the_engine_leaves_no_temporary_file_behind(system_tmp):
    # the engine ends with os._exit or is killed: TensorFlow's own clean-up of
    # the modules AutoGraph writes to the temporary folder never runs
    engine = Engine("test")
    images = np.zeros((2, 28, 28), np.float32)
    model = str(shipped_model_path())
    try:
        for end in (engine.kill, engine.shutdown):
            assert engine.call(p.Predict(model=model, images=images)).shape == (2, 10)
            assert [f.parent for f in system_tmp.iterdir()] == [system_tmp]
            end()
            assert list(system_tmp.iterdir()) == []
    finally:
        engine.shutdown()


def test_shutdown_mid_request_removes_the_temporary_folder(
    system_tmp, tmp_path, mnist_dir
):
    # a viewer closed while its training runs: no thread will see the death
    engine = Engine("test")
    events = engine.events(p.Train(tiny(tmp_path, mnist_dir, epochs=50)))
    try:
        next(events)  # running; the request holds the engine, nobody listens
        assert engine.busy and len(list(system_tmp.iterdir())) == 1
        engine.shutdown()
        assert not engine.alive and list(system_tmp.iterdir()) == []
    finally:
        events.close()
        engine.shutdown()


VIEWER = """
import os, signal
import numpy as np
from napari_digits.current_model import shipped_model_path
from napari_digits.engine.client import get_engine
from napari_digits.engine.protocol import Predict
images = np.zeros((2, 28, 28), np.float32)
get_engine().call(Predict(model=str(shipped_model_path()), images=images))
"""


def viewer_ends(sig: signal.Signals, *, with_engine: bool) -> None:
    """Run a viewer (its TMPDIR: system_tmp) that starts its engine, then gets
    ``sig``: alone, or with its engine (its whole process group)."""
    end = "os.killpg(0, " if with_engine else "os.kill(os.getpid(), "
    viewer = subprocess.run(
        [sys.executable, "-c", f"{VIEWER}{end}signal.{sig.name})\n"],
        timeout=120,
        check=False,
        start_new_session=with_engine,
    )
    assert viewer.returncode == -sig


def emptied(folder: Path, seconds: float = 30) -> bool:
    """Whether ``folder`` is empty within ``seconds`` (an engine leaving)."""
    deadline = time.monotonic() + seconds
    while list(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return not list(folder.iterdir())


def test_an_engine_whose_viewer_was_killed_removes_its_temporary_folder(system_tmp):
    viewer_ends(signal.SIGKILL, with_engine=False)
    assert emptied(system_tmp)  # the engine sees its pipe close


def test_the_folder_of_a_viewer_and_engine_killed_at_once_goes_at_the_next_start(
    system_tmp,
):
    viewer_ends(signal.SIGKILL, with_engine=True)
    [left] = system_tmp.iterdir()  # nobody was left to remove it
    assert left.name.startswith("napari-digits-default-")
    deadline = time.monotonic() + 30  # the killed engine may still be exiting
    while not scratch._unheld(str(left)) and time.monotonic() < deadline:
        time.sleep(0.1)
    engine = Engine("test")
    try:
        images = np.zeros((2, 28, 28), np.float32)
        engine.call(p.Predict(model=str(shipped_model_path()), images=images))
        assert [f.name[:19] for f in system_tmp.iterdir()] == ["napari-digits-test-"]
    finally:
        engine.shutdown()
    assert list(system_tmp.iterdir()) == []


def test_a_terminated_viewer_and_engine_leave_no_folder(system_tmp):
    # as `timeout napari` does: SIGTERM to the viewer's whole process group
    viewer_ends(signal.SIGTERM, with_engine=True)
    assert emptied(system_tmp)  # the engine leaves on its own


def tiny(tmp_path, mnist_dir, **kwargs) -> p.TrainConfig:
    options = {"epochs": 1, "train_limit": 2000, "test_limit": 500} | kwargs
    return p.TrainConfig(
        out=str(tmp_path / "model.keras"), mnist=str(mnist_dir), **options
    )


def test_a_short_training_streams_progress_then_its_result(engine, tmp_path, mnist_dir):
    events = list(engine.events(p.Train(tiny(tmp_path, mnist_dir))))
    progress = [e.progress for e in events if isinstance(e, p.Progress)]
    assert progress and all(pr.epochs == 1 for pr in progress)
    assert [pr.epoch for pr in progress if pr.epoch_end] == [1]
    assert any(isinstance(e, p.Log) for e in events)
    result = events[-1].value
    assert isinstance(result, p.TrainingResult)
    assert result.epochs_done == 1 and not result.stopped
    assert 0 <= result.test_accuracy <= 1
    assert (tmp_path / "model.keras").is_file()


def test_stop_ends_at_the_next_batch_with_a_checkpoint_that_loads(
    engine, tmp_path, mnist_dir
):
    result = None
    for event in engine.events(p.Train(tiny(tmp_path, mnist_dir, epochs=50))):
        if isinstance(event, p.Progress) and event.progress.epoch_end:
            engine.stop()
        if isinstance(event, p.Result):
            result = event.value
    assert result.stopped and result.epochs_done < 50
    checkpoint = str(tmp_path / "model.keras")
    assert engine.call(p.Describe(checkpoint)).n_classes == 10
    evaluation = engine.call(p.Evaluate(checkpoint, mnist=str(mnist_dir), limit=200))
    assert evaluation.count == 200 and evaluation.confusion.sum() == 200


def test_a_request_given_up_midway_does_not_leak_into_the_next(
    engine, tmp_path, mnist_dir
):
    events = engine.events(p.Train(tiny(tmp_path, mnist_dir, epochs=50)))
    first = next(e for e in events if isinstance(e, p.Progress))
    assert first.progress.epoch == 1
    events.close()  # the caller stops listening: the training is asked to stop
    assert engine.call(p.Ping()) == engine.pid
    assert engine.call(p.Ping()) == engine.pid


def test_a_stop_before_the_training_starts_is_kept_for_it(engine, tmp_path, mnist_dir):
    engine.stop()  # e.g. Stop pressed while an earlier request still runs
    assert engine.call(p.Ping()) == engine.pid  # not consumed by another request
    result = engine.call(p.Train(tiny(tmp_path, mnist_dir, epochs=50)))
    assert result.stopped and result.epochs_done == 0
    result = engine.call(p.Train(tiny(tmp_path, mnist_dir, train_limit=500)))
    assert not result.stopped  # consumed: the next training runs to its end


SCRIPT = """
print("main script ran")
from napari_digits.engine.client import get_engine
from napari_digits.engine.protocol import Ping
print("pid", get_engine().call(Ping(), timeout=60))
"""


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_the_engine_never_reruns_an_unguarded_main_script(tmp_path, how):
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    args, stdin = ([str(script)], None) if how == "file" else (["-"], SCRIPT)
    out = subprocess.run(
        [sys.executable, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("main script ran") == 1
    assert "pid " in out.stdout


class _Unreadable:
    """Pickles fine here; unpickling it in the engine raises ZeroDivisionError."""

    def __reduce__(self):
        import operator

        return operator.truediv, (1, 0)


def test_a_request_the_engine_cannot_read_is_an_error_and_it_survives(fresh_engine):
    pid = fresh_engine.call(p.Ping())
    with pytest.raises(EngineError, match="ZeroDivisionError") as info:
        fresh_engine.call(_Unreadable())
    assert info.value.error_type == "UnreadableRequest"
    assert fresh_engine.call(p.Ping()) == pid


@pytest.mark.parametrize(
    "send",
    [
        lambda conn: conn.send_bytes(b"\x80\x05 raw garbage, not a pickle"),
        lambda conn: conn.send("a message that is no (id, request) pair"),
        lambda conn: conn.send((7, b"not a pickle either")),
    ],
)
def test_garbage_on_the_pipe_leaves_the_engine_serving(fresh_engine, send):
    pid = fresh_engine.call(p.Ping())
    send(fresh_engine._conn)  # as a stray writer on the pipe would
    assert fresh_engine.call(p.Ping(), timeout=60) == pid
    assert fresh_engine.alive
