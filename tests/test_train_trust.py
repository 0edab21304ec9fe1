"""Training and model files under bad values, faults and competition.

Every TensorFlow step runs in a subprocess (the real ``napari-digits``
command line, or a small script): TensorFlow never enters this process.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napari_digits.current_model import shipped_model_path
from napari_digits.engine.protocol import ConfigError, Evaluate, TrainConfig

REPO = Path(__file__).resolve().parents[1]

QUICK = ["--train-limit", "256", "--test-limit", "100", "--batch-size", "64"]
#: TensorFlow's start-up lines that must never reach a user's terminal
NOISE = re.compile(
    r"cuInit|oneDNN|absl|This TensorFlow binary|cudart|cuda_|[IWE]0000 ", re.I
)


@pytest.fixture(autouse=True)
def _mnist_for_commands(monkeypatch):
    """Point the commands at the full MNIST where it is (conftest's rule)."""
    path = os.environ.get("MNIST_DIR") or str(REPO.parent / "shared/data/mnist")
    monkeypatch.setenv("MNIST_DIR", path)


def _env(changes: dict | None) -> dict:
    """This process's environment with ``changes`` (None: unset the variable)."""
    env = dict(os.environ)
    for key, value in (changes or {}).items():
        env.pop(key, None) if value is None else env.__setitem__(key, value)
    return env


def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ``napari-digits ARGS`` in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "napari_digits", *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(env),
        timeout=600,
        check=False,
        **kwargs,
    )


def run_script(
    code: str, *args: str, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run a Python snippet with TensorFlow in a subprocess."""
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=_env(env),
        timeout=600,
        check=False,
    )


def one_error(done: subprocess.CompletedProcess, *needles: str) -> str:
    """Assert exit 1, one ``error:`` line (holding ``needles``), no traceback."""
    assert done.returncode == 1, (done.stdout, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def temporaries(folder: Path) -> list[str]:
    """Names of temporary files (io.atomic_path's) left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, mnist_dir) -> Path:
    """A model trained for one epoch on 256 digits, with its sidecar."""
    out = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    done = cli("train", "--out", out, "--epochs", 1, *QUICK)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture
def model(tiny_model, tmp_path) -> Path:
    """A private copy of the tiny model and its sidecar."""
    out = tmp_path / "model.keras"
    shutil.copy(tiny_model, out)
    shutil.copy(f"{tiny_model}.json", f"{out}.json")
    return out


# -- bad values, refused before anything runs --------------------------------

BAD_TRAIN_FLAGS = [
    ("--epochs", "-1"),
    ("--epochs", "0"),
    ("--batch-size", "0"),
    ("--learning-rate", "nan"),
    ("--learning-rate", "inf"),
    ("--learning-rate", "-1"),
    ("--learning-rate", "0"),
    ("--time-budget", "0"),
    ("--time-budget", "-3"),
    ("--time-budget", "nan"),
    ("--train-limit", "0"),
    ("--test-limit", "-5"),
    ("--seed", "-1"),
]


@pytest.mark.parametrize(("flag", "value"), BAD_TRAIN_FLAGS)
def test_bad_training_values_are_refused_before_anything_runs(tmp_path, flag, value):
    out = tmp_path / "model.keras"
    out.write_bytes(b"the previous model")
    done = cli("train", "--out", out, *QUICK, flag, value)
    line = one_error(done, flag.lstrip("-"), value)
    assert done.stderr.strip() == line  # nothing ran: no progress, no log
    assert out.read_bytes() == b"the previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.keras"]


@pytest.mark.parametrize(
    "field",
    [
        {"epochs": 0},
        {"epochs": -1},
        {"epochs": 2.5},
        {"epochs": True},
        {"batch_size": 0},
        {"learning_rate": float("nan")},
        {"learning_rate": float("inf")},
        {"learning_rate": 0.0},
        {"learning_rate": -0.1},
        {"time_budget": 0},
        {"time_budget": float("-inf")},
        {"train_limit": 0},
        {"test_limit": -1},
        {"seed": -1},
        {"architecture": "resnet"},
        {"device": ""},
        {"out": "model.h5"},
        {"continental": True},  # it redraws augmented digits: needs augment
        {"scan_statistics": True},  # so do these statistics
        {"init": "model.h5"},
    ],
)
def test_train_config_refuses_every_bad_value(field):
    options = {"out": "model.keras"} | field
    with pytest.raises(ConfigError):
        TrainConfig(**options)


def test_evaluate_limit_below_one_is_refused():
    with pytest.raises(ConfigError):
        Evaluate("model.keras", limit=0)
    done = cli("evaluate", "--limit", "0")
    assert one_error(done, "--limit") == done.stderr.strip()


def test_a_config_that_skipped_its_checks_is_refused_by_the_engine(engine, tmp_path):
    from napari_digits.engine import protocol as p
    from napari_digits.engine.client import EngineError

    config = TrainConfig(out=str(tmp_path / "m.keras"))
    object.__setattr__(config, "learning_rate", float("nan"))  # as a pickle could
    with pytest.raises(EngineError, match="learning-rate") as info:
        engine.call(p.Train(config))
    assert info.value.error_type == "ConfigError"
    assert list(tmp_path.iterdir()) == []


# -- divergence and NaN weights ------------------------------------------------


@pytest.mark.slow  # several TensorFlow processes
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(model):
    sidecar = Path(f"{model}.json")
    state = json.loads(sidecar.read_text())
    state["config"]["learning_rate"] = 1e30  # a value that diverges at once
    sidecar.write_text(json.dumps(state))
    before = model.read_bytes()
    done = cli("train", "--out", model, "--resume", "--epochs", 2)
    one_error(done, "the loss became nan", "checkpoint of epoch 1", "lower")
    assert model.read_bytes() == before
    assert json.loads(sidecar.read_text())["epochs_done"] == 1
    assert temporaries(model.parent) == []
    assert cli("evaluate", model, "--limit", 50).returncode == 0  # still usable


def test_a_run_that_diverges_at_once_leaves_the_previous_model(model):
    before = model.read_bytes()
    done = cli("train", "--out", model, "--learning-rate", "1e30", *QUICK)
    one_error(done, "the loss became nan", "was not written")
    assert model.read_bytes() == before
    assert temporaries(model.parent) == []


NAN_MODEL = """
import sys, numpy as np
from napari_digits.engine.models import keras
model = keras.models.load_model(sys.argv[1], compile=False)
weights = model.get_weights()
weights[0] = np.full_like(weights[0], np.nan)
model.set_weights(weights)
model.save(sys.argv[2])
"""


@pytest.mark.slow  # three TensorFlow processes
def test_a_model_with_nan_weights_is_never_used(tiny_model, tmp_path):
    bad = tmp_path / "diverged.keras"
    done = run_script(NAN_MODEL, tiny_model, bad)
    assert done.returncode == 0, done.stderr[-2000:]
    one_error(cli("evaluate", bad, "--limit", 20), "NaN or infinite weights")
    page = Path(str(shipped_model_path())).parent.parent / "_sample_files"
    done = cli(
        "read", page / "scanned_page.jpg", "--model", bad, "--out", tmp_path / "r.csv"
    )
    assert done.returncode == 1 and "NaN or infinite weights" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "r.csv").exists()


#: each command that loads a model, with a wrong file as that model
MODEL_COMMANDS = {
    "evaluate": ["evaluate", "{bad}"],
    "filters": ["filters", "{bad}"],
    "read": [
        "read",
        str(REPO / "sample_data/scanned_page.jpg"),
        "--model",
        "{bad}",
        "--out",
        "{csv}",
    ],
    "finetune": ["finetune", "{table}", "--model", "{bad}", "--out", "{out}"],
    "train": ["train", "--init", "{bad}", "--out", "{out}"],
    "train-fields": ["train-fields", "--from", "{bad}", "--out", "{out}"],
}
#: runs the command line in one process; says whether TensorFlow came in
IN_PROCESS = """
import sys
from napari_digits.cli import main
status = main(sys.argv[1:])
print("TENSORFLOW", "tensorflow" in sys.modules, status)
"""


@pytest.mark.parametrize("command", sorted(MODEL_COMMANDS))
@pytest.mark.parametrize("bad", ["notes.txt", "missing.keras"])
def test_a_wrong_model_file_is_refused_before_tensorflow_loads(tmp_path, command, bad):
    """A wrong model file is one error line at once, not after TensorFlow's
    seconds to load; the output is never written."""
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "table.csv").write_text("file\n")
    fill = {"bad": tmp_path / bad, "table": tmp_path / "table.csv"}
    fill |= {"out": tmp_path / "out.keras", "csv": tmp_path / "out.csv"}
    args = [a.format(**fill) for a in MODEL_COMMANDS[command]]
    done = subprocess.run(
        [sys.executable, "-c", IN_PROCESS, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.split()[-3:] == ["TENSORFLOW", "False", "1"], done.stderr
    line = done.stderr.strip()
    assert "\n" not in line and "error:" in line and str(tmp_path / bad) in line
    assert (
        "does not exist" if bad == "missing.keras" else "keras model"
    ) in line.lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "table.csv"]


@pytest.mark.parametrize("name", ["notes.txt", "notes.keras", "zip.keras"])
def test_a_file_that_is_no_model_is_not_a_keras_model(tmp_path, name):
    path = tmp_path / name
    if name == "zip.keras":
        shutil.make_archive(str(tmp_path / "zip"), "zip", tmp_path, ".")
        (tmp_path / "zip.zip").rename(path)
    else:
        path.write_text("hello")
    done = cli("evaluate", path, "--limit", 10)
    one_error(done, "is not a Keras model")
    assert "File not found" not in done.stderr


# -- the output: lock, room, atomic writes, faults ------------------------------


@pytest.mark.slow  # several TensorFlow processes
def test_two_trainings_to_one_output_cannot_both_write(tmp_path, mnist_dir):
    out = tmp_path / "model.keras"
    args = ["train", "--out", str(out), "--epochs", "2", "--train-limit", "2048"]
    first = subprocess.Popen(
        [sys.executable, "-m", "napari_digits", *args, "--test-limit", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = tmp_path / ".model.keras.lock"
    deadline = time.monotonic() + 500  # TensorFlow loads slowly on busy cores
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), "the first training never took its lock"
    second = cli("train", "--out", out, "--epochs", 1, *QUICK)
    one_error(second, "another training is writing", f"pid {first.pid}")
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert json.loads(Path(f"{out}.json").read_text())["epochs_done"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.keras",
        "model.keras.json",
    ]  # the lock is gone, no temporary left


def _file_size_limit(nbytes: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))


def test_a_file_size_limit_is_one_error_before_training(model):
    before = model.read_bytes()
    done = cli("train", "--out", model, *QUICK, preexec_fn=_file_size_limit(200_000))
    line = one_error(done, "file-size limit")
    assert done.stderr.strip() == line  # refused before training
    assert model.read_bytes() == before
    assert temporaries(model.parent) == []


SAVE_UNDER_LIMIT = """
import resource, sys
from napari_digits import scratch
scratch.use_own()  # as the commands and the engine do, before TensorFlow
from napari_digits.engine.checkpoints import save_model, write_state
from napari_digits.engine.models import keras
model = keras.models.load_model(sys.argv[1], compile=False)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
for write in (lambda: save_model(model, sys.argv[1]),
              lambda: write_state({"history": "x" * 200_000}, sys.argv[1])):
    try:
        write()
    except OSError as exc:
        print("ERROR", exc)
"""


def test_a_full_disk_during_the_save_keeps_the_previous_files(model, tmp_path):
    """Keras's own temporary folder is left behind when its clean-up cannot
    write either: in the process's folder of its own, it goes at exit."""
    before, state = model.read_bytes(), Path(f"{model}.json").read_bytes()
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    done = run_script(SAVE_UNDER_LIMIT, model, env={"TMPDIR": str(system_tmp)})
    errors = [x for x in done.stdout.splitlines() if x.startswith("ERROR")]
    assert len(errors) == 2, done.stdout + done.stderr[-2000:]
    assert all("the file there before is unchanged" in e for e in errors)
    assert model.read_bytes() == before
    assert Path(f"{model}.json").read_bytes() == state
    assert temporaries(model.parent) == []
    assert list(system_tmp.iterdir()) == []


def test_a_read_only_folder_is_one_error_before_training(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    command = [sys.executable, "-m", "napari_digits", "train"]
    command += ["--out", str(folder / "m.keras"), *QUICK]
    if os.geteuid() == 0:  # root writes through any mode: mount it read-only
        if shutil.which("unshare") is None:
            pytest.skip("root without unshare: no read-only folder to test")
        mount = f'mount -t tmpfs -o ro tmpfs {folder} && exec "$@"'
        command = ["unshare", "--mount", "sh", "-c", mount, "sh", *command]
    else:
        folder.chmod(0o555)
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if "mount:" in done.stderr:
        pytest.skip(f"cannot mount a read-only folder here: {done.stderr}")
    line = one_error(done, "not writable")
    assert done.stderr.strip() == line
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="no /proc")
def test_a_folder_that_takes_no_file_is_one_error_naming_the_output():
    # /proc passes the access check (as root too) but takes no new file
    done = cli("train", "--out", "/proc/m.keras", *QUICK)
    line = one_error(done, "cannot write /proc/m.keras")
    assert ".lock" not in line


@pytest.mark.slow  # several TensorFlow processes
def test_kill_9_during_the_checkpoint_write_keeps_the_previous_model(tmp_path):
    out = tmp_path / "model.keras"
    shutil.copy(shipped_model_path(), out)
    before = out.read_bytes()
    args = ["train", "--model", "tutorial", "--out", str(out), "--epochs", "1"]
    args += ["--train-limit", "128", "--test-limit", "50"]
    train = subprocess.Popen(
        [sys.executable, "-m", "napari_digits", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed = False
    while train.poll() is None:
        if temporaries(tmp_path):  # the checkpoint is being written now
            train.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.002)
    train.wait(60)
    assert killed, "the write was never caught in progress"
    assert out.read_bytes() == before  # the previous model, untouched
    assert cli("evaluate", out, "--limit", 20).returncode == 0
    # the next run on this output removes what the killed one left behind
    done = cli("train", "--out", out, "--epochs", "1", *QUICK)
    assert done.returncode == 0, done.stderr[-2000:]
    assert temporaries(tmp_path) == []


# -- resume ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--model", "tutorial"], "--model tutorial"),
        (["--learning-rate", "0.01"], "--learning-rate 0.01"),
        (["--batch-size", "32"], "--batch-size 32"),
        (["--train-limit", "512"], "--train-limit 512"),
    ],
)
def test_resume_flags_that_contradict_the_checkpoint_are_an_error(model, flags, needle):
    before = model.read_bytes()
    done = cli("train", "--out", model, "--resume", "--epochs", 2, *flags)
    one_error(done, needle, "model.keras.json")
    assert model.read_bytes() == before


@pytest.mark.parametrize("damage", ["missing", "not json", "no architecture"])
def test_a_damaged_or_missing_sidecar_is_an_error_naming_it(model, damage):
    sidecar = Path(f"{model}.json")
    if damage == "missing":
        sidecar.unlink()
    elif damage == "not json":
        sidecar.write_text("{broken")
    else:
        state = json.loads(sidecar.read_text())
        del state["architecture"]
        sidecar.write_text(json.dumps(state))
    done = cli("train", "--out", model, "--resume", "--epochs", 2)
    one_error(
        done, str(sidecar), damage.split()[0] if damage == "missing" else "damaged"
    )


@pytest.mark.slow  # several TensorFlow processes
def test_resume_takes_architecture_and_recipe_from_the_checkpoint(tmp_path):
    out = tmp_path / "t.keras"
    quick = ["--train-limit", "256", "--test-limit", "50"]
    first = cli("train", "--model", "tutorial", "--out", out, "--epochs", 1, *quick)
    assert first.returncode == 0, first.stderr[-2000:]
    done = cli("train", "--out", out, "--resume", "--epochs", 2)  # no flags
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("trained tutorial for 2 epoch(s)")
    state = json.loads(Path(f"{out}.json").read_text())
    assert state["architecture"] == "tutorial"
    assert state["config"]["learning_rate"] == 0.01  # the tutorial's recipe
    assert state["config"]["train_limit"] == 256  # the checkpoint's data
    assert temporaries(tmp_path) == []


@pytest.mark.slow  # two TensorFlow processes
def test_init_starts_from_the_model_and_records_it(model, tmp_path):
    base = float(cli("evaluate", model, "--limit", 100).stdout.split()[-1])
    out = tmp_path / "tuned.keras"
    flags = ["--epochs", 1, "--learning-rate", "1e-9", *QUICK]
    done = cli("train", "--init", model, "--out", out, *flags)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "starting from the weights of" in done.stderr
    tuned = float(done.stdout.split("test accuracy ")[1].split(",")[0])
    assert base > 0.3 and tuned >= base - 0.03  # a random start reads ~0.1
    state = json.loads(Path(f"{out}.json").read_text())
    assert state["config"]["init"] == str(model)


def test_init_and_out_the_same_file_is_refused_before_anything_runs(model):
    before = model.read_bytes()
    done = cli("train", "--init", model, "--out", model, "--epochs", 1, *QUICK)
    line = one_error(done, "is an input")
    assert done.stderr.strip() == line  # nothing ran
    assert model.read_bytes() == before


@pytest.mark.parametrize("kind", ["missing", "other network", "not a model"])
def test_a_bad_init_model_is_one_error_and_writes_nothing(model, tmp_path, kind):
    init = model
    if kind == "missing":
        init = tmp_path / "nowhere.keras"
    elif kind == "not a model":
        init = tmp_path / "text.keras"
        init.write_text("not a model")
    arch = ["--model", "tutorial"] if kind == "other network" else []
    out = tmp_path / "out.keras"
    done = cli("train", "--init", init, "--out", out, "--epochs", 1, *arch, *QUICK)
    one_error(done, "cannot start from", str(init))
    assert not out.exists()


# -- MNIST ---------------------------------------------------------------------


def test_corrupt_mnist_gzip_is_one_line_naming_the_file(tmp_path, mnist_dir):
    bad = tmp_path / "mnist"
    shutil.copytree(mnist_dir, bad)
    images = bad / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100_000])
    done = cli("train", "--out", tmp_path / "m.keras", "--mnist", bad, *QUICK)
    one_error(done, "train-images-idx3-ubyte.gz")
    assert not (tmp_path / "m.keras").exists()


def test_an_empty_training_set_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for stem, magic, shape in [
        ("train-images-idx3-ubyte", 2051, (0, 28, 28)),
        ("train-labels-idx1-ubyte", 2049, (0,)),
        ("t10k-images-idx3-ubyte", 2051, (0, 28, 28)),
        ("t10k-labels-idx1-ubyte", 2049, (0,)),
    ]:
        header = magic.to_bytes(4, "big") + b"".join(
            n.to_bytes(4, "big") for n in shape
        )
        (empty / stem).write_bytes(header)
    done = cli("train", "--out", tmp_path / "m.keras", "--mnist", empty)
    one_error(done, "no training images")
    assert not (tmp_path / "m.keras").exists()


def test_mnist_nowhere_is_never_downloaded_without_asking(tmp_path):
    env = {"MNIST_DIR": None, "KERAS_HOME": str(tmp_path / "keras")}
    done = cli("evaluate", "--limit", 10, env=env)
    one_error(done, str(tmp_path / "keras"), "--download")
    assert not (tmp_path / "keras" / "datasets").exists()  # nothing fetched


# -- what a user sees ----------------------------------------------------------


ENGINE_IN_A_VIEWER = """
import numpy as np
from napari_digits.engine import protocol as p
from napari_digits.engine.client import Engine
from napari_digits.current_model import shipped_model_path
engine = Engine("noise")
engine.call(p.ListDevices())
engine.call(p.Predict(str(shipped_model_path()), np.zeros((2, 28, 28), np.uint8)))
engine.shutdown()
print("done")
"""


@pytest.mark.slow  # several TensorFlow processes
def test_tensorflow_start_up_lines_never_reach_a_user(tmp_path, model):
    env = {"TF_CPP_MIN_LOG_LEVEL": None}  # as a user's shell has it: unset
    page = Path(str(shipped_model_path())).parent.parent / "_sample_files"
    runs = {
        "evaluate": cli("evaluate", "--limit", 50, env=env),
        "filters": cli("filters", "--out", tmp_path / "f.png", env=env),
        "read": cli(
            "read", page / "scanned_page.jpg", "--out", tmp_path / "r.csv", env=env
        ),
        "train": cli(
            "train", "--out", tmp_path / "t.keras", "--epochs", 1, *QUICK, env=env
        ),
        "engine": run_script(ENGINE_IN_A_VIEWER, env=env),
    }
    for name, done in runs.items():
        assert done.returncode == 0, (name, done.stderr[-2000:])
        noise = [line for line in done.stderr.splitlines() if NOISE.search(line)]
        assert noise == [], (name, noise)
