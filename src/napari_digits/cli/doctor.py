"""``napari-digits doctor``: check this installation, one line per check.

Python, napari, the Qt binding, the display, the OpenGL renderer, TensorFlow
and its devices, the engine's start time, MNIST, the model and its field
reader: each line says ``ok``, ``warn`` or ``FAIL``, and each problem comes
with its fix. The exit status is 0 when nothing failed, 1 otherwise.

TensorFlow and an OpenGL context must never share a process (see DESIGN.md):
this process imports neither. OpenGL is probed in a subprocess
(:mod:`napari_digits.cli._gl_probe`) and TensorFlow through an engine process
whose start-up log lines go to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_digits import data
from napari_digits.cli import _system as system
from napari_digits.cli._engine import _quiet_fd2
from napari_digits.current_model import own_reader_path, reader_path, shipped_model_path
from napari_digits.scan.fields import FIELD_HEIGHT, FIELD_WIDTH, decode, field_image

#: how many MNIST test digits the model check reads
SCORE_DIGITS = 100
#: the least accuracy on them that counts as a working model
MIN_ACCURACY = 0.9
#: the field reader check reads them as lines of ``LINE_DIGITS`` digits side by
#: side; a working reader reads at least ``MIN_LINES`` of the lines right (the
#: shipped one 23 of 25)
LINE_DIGITS = 4
MIN_LINES = 0.8
#: seconds an engine request or the OpenGL probe may take
TIMEOUT = 180.0
#: Debian/Ubuntu packages Qt needs to open an X display (a subset of .ci/dev's)
QT_APT_PACKAGES = (
    "libgl1 libegl1 libgl1-mesa-dri libglib2.0-0 libdbus-1-3 libfontconfig1 "
    "libx11-xcb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 "
    "libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-shape0 "
    "libxcb-xfixes0 libxcb-xinerama0 libxcb-xkb1"
)
#: how Qt names a system library it could not load
MISSING_LIBRARY = r"libxcb-cursor0|lib[\w+.-]+?\.so[.\d]*(?=: cannot open)"
HEADLESS_FIX = "run napari on a desktop, or headless: xvfb-run -a napari"
STATUSES = ("ok", "warn", "FAIL")


@dataclass(frozen=True)
class Check:
    """The outcome of one check: ``status`` is ``ok``, ``warn`` or ``FAIL``."""

    name: str
    status: str
    message: str
    fix: str = ""

    def line(self) -> str:
        """Return the check as one line of text (with its fix, if any)."""
        fix = f"  fix: {self.fix}" if self.fix else ""
        return f"{self.status:<4}  {self.name:<10}  {self.message}{fix}"


@dataclass
class Context:
    """What the checks learn and pass on to later checks."""

    mnist_path: str | None = None
    quick: bool = False
    model: Path = field(default_factory=shipped_model_path)
    engine: object = None
    devices: list | None = None
    mnist: data.Mnist | None = None


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``doctor`` subcommand to ``sub``.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The subparsers of the top-level parser.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    parser = sub.add_parser(
        "doctor",
        help="check the installation: Qt, OpenGL, TensorFlow, GPU, MNIST, model",
        description="Check everything napari-digits needs, one line per check "
        "(ok, warn or FAIL with its fix). Exit status 1 when a check failed.",
    )
    parser.add_argument("--mnist", help="MNIST directory or mnist.npz to check")
    parser.add_argument("--model", help="a .keras model to check (default: shipped)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="skip what needs TensorFlow (engine, GPU, model): a few seconds",
    )
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run every check, print one line each, and return the exit status.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``--mnist`` and ``--model`` options.

    Returns
    -------
    int
        0 when no check failed, 1 otherwise.
    """
    context = Context(mnist_path=args.mnist, quick=args.quick)
    if args.model:
        context.model = Path(args.model).expanduser()
    failed = []
    try:
        for check in run_checks(context):
            print(check.line(), flush=True)
            if check.status == "FAIL":
                failed.append(check.name)
    finally:
        if context.engine is not None:
            context.engine.shutdown()
    if failed:
        print(f"{len(failed)} check(s) failed: {', '.join(failed)}; see the fixes")
        return 1
    print("all checks passed")
    return 0


def run_checks(context: Context) -> Iterator[Check]:
    """Yield the checks' outcomes in order; an unexpected error is a FAIL.

    Parameters
    ----------
    context : Context
        Options in, findings passed from one check to the next.

    Yields
    ------
    Check
        One per check.
    """
    for name, check in CHECKS:
        if context.quick and name in NEEDS_TENSORFLOW:
            continue
        try:
            yield check(context)
        except Exception as exc:
            message = f"unexpected {type(exc).__name__}: {exc}"
            yield Check(name, "FAIL", message, "report this line as a bug")


# -- environment -----------------------------------------------------------


def check_python(context: Context) -> Check:
    """Report Python's version and where it runs from."""
    version = ".".join(map(str, sys.version_info[:3]))
    return Check("python", "ok", f"{version} ({sys.executable})")


def check_napari(context: Context) -> Check:
    """Check napari's version, and that napari finds this plugin."""
    version = system.version("napari")
    if version is None:
        return Check("napari", "FAIL", "not installed", 'pip install "napari[pyqt6]"')
    from npe2 import PluginManager

    manager = PluginManager()
    manager.discover()
    try:
        manager.get_manifest("napari-digits")
    except KeyError:
        fix = "pip install napari-digits (from a checkout: pip install -e .)"
        return Check("napari", "FAIL", f"{version}, plugin not found", fix)
    return Check("napari", "ok", f"{version}, plugin napari-digits found")


def check_qt(context: Context) -> Check:
    """Check the Qt binding napari will use (qtpy's choice) and its Qt version."""
    installed = [b for b in ("PyQt6", "PyQt5", "PySide6") if system.version(b)]
    if not installed:
        return Check("qt", "FAIL", "no Qt binding", 'pip install "napari[pyqt6]"')
    try:
        import qtpy
    except Exception as exc:  # a binding that cannot load its libraries
        fix = f"sudo apt-get install -y {QT_APT_PACKAGES}"
        return Check("qt", "FAIL", f"{', '.join(installed)} cannot load: {exc}", fix)
    message = f"{qtpy.API_NAME} {qtpy.PYQT_VERSION or qtpy.PYSIDE_VERSION} "
    message += f"(Qt {qtpy.QT_VERSION}); installed: {', '.join(installed)}"
    if qtpy.API_NAME != "PyQt5":
        return Check("qt", "ok", message)
    fix = "export QT_API=pyqt6" if "PyQt6" in installed else "pip install PyQt6"
    message += "; napari deprecates PyQt5 (a warning in every session)"
    return Check("qt", "warn", message, fix)


def check_display(context: Context) -> Check:
    """Check DISPLAY or WAYLAND_DISPLAY, and name the X server (Xvfb...)."""
    wayland, x11 = os.environ.get("WAYLAND_DISPLAY"), os.environ.get("DISPLAY")
    if not (wayland or x11):
        fix = HEADLESS_FIX
        if not shutil.which("xvfb-run"):
            fix = "sudo apt-get install -y xvfb xauth, then " + fix
        return Check("display", "FAIL", "none: DISPLAY and WAYLAND_DISPLAY unset", fix)
    shown = [f"WAYLAND_DISPLAY={wayland}"] if wayland else []
    if x11:
        server = system.x_server(x11)
        virtual = ", a virtual display" if server == "Xvfb" else ""
        shown.append(f"DISPLAY={x11}" + (f" ({server}{virtual})" if server else ""))
    return Check("display", "ok", ", ".join(shown))


def check_opengl(context: Context) -> Check:
    """Check the OpenGL renderer Qt gets, probed in a subprocess."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return Check("opengl", "warn", "not checked: no display")
    probe = _run_probe()
    last = probe.stdout.strip().splitlines()[-1:] or [""]
    if probe.returncode == 0 and last[0].startswith("{"):
        return _renderer_check(json.loads(last[0]))
    return _probe_failure(probe, last[0])


def _renderer_check(info: dict[str, str]) -> Check:
    """Judge the renderer the probe found."""
    message = f"{info['renderer']}, OpenGL {info['version']} ({info['platform']})"
    if "llvmpipe" in info["renderer"] or "softpipe" in info["renderer"]:
        message += (
            ": Mesa software rendering, so a slower canvas; TensorFlow must stay "
            "out of the viewer's process, as the plugin's engine ensures (DESIGN.md)"
        )
        return Check("opengl", "warn", message)
    return Check("opengl", "ok", message)


def _probe_failure(probe: subprocess.CompletedProcess, last: str) -> Check:
    """Explain why the OpenGL probe failed."""
    text = probe.stderr + probe.stdout
    if probe.returncode is None:
        return Check("opengl", "FAIL", "the probe hung", HEADLESS_FIX)
    if "could not connect to display" in text:
        display = os.environ.get("DISPLAY")
        fix = f"start the X server of {display}, or {HEADLESS_FIX}"
        return Check("opengl", "FAIL", f"display {display} does not answer", fix)
    if "platform plugin" in text:
        fix = f"sudo apt-get install -y {QT_APT_PACKAGES}"
        missing = sorted(set(re.findall(MISSING_LIBRARY, text)))
        needs = f" (missing: {', '.join(missing)})" if missing else ""
        return Check("opengl", "FAIL", f"Qt cannot load its display plugin{needs}", fix)
    how = last.removeprefix("error: ") if last.startswith("error:") else ""
    how = how or _exit_reason(probe.returncode)
    fix = "sudo apt-get install -y libgl1 libegl1 libgl1-mesa-dri"
    return Check("opengl", "FAIL", f"no OpenGL context: {how}", fix)


def _run_probe() -> subprocess.CompletedProcess:
    """Run the OpenGL probe in a subprocess (returncode None: it hung)."""
    command = [sys.executable, "-m", "napari_digits.cli._gl_probe"]
    env = {**os.environ, "QT_DEBUG_PLUGINS": "1"}  # names a missing library
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=60, env=env
        )
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(command, None, "", "")


# -- TensorFlow and the engine ---------------------------------------------


def check_tensorflow(context: Context) -> Check:
    """Report TensorFlow's version and build (read from its files, not imported)."""
    dist = system.tensorflow_dist()
    if dist is None:
        return Check("tensorflow", "FAIL", "not installed", "pip install tensorflow")
    build = system.build_info()
    cuda = f"CUDA {build['cuda_version']} build" if build.get("is_cuda_build") else ""
    kind = cuda or "CPU-only build"
    return Check("tensorflow", "ok", f"{dist} {system.version(dist)} ({kind})")


def check_engine(context: Context) -> Check:
    """Start an engine process and time it: process start, TensorFlow loaded."""
    from napari_digits.engine import protocol as p
    from napari_digits.engine.client import Engine, EngineError

    context.engine = engine = Engine("doctor")
    start = time.perf_counter()
    try:
        with _quiet_fd2():  # the engine inherits a quiet stderr: no TF log lines
            engine.call(p.Ping(), timeout=TIMEOUT)
        up = time.perf_counter() - start
        context.devices = engine.call(p.ListDevices(), timeout=TIMEOUT)
    except EngineError as exc:
        fix = "pip install --force-reinstall tensorflow; then rerun doctor"
        return Check("engine", "FAIL", f"{exc}", fix)
    total = time.perf_counter() - start
    message = f"process up in {up:.1f} s, TensorFlow ready in {total:.1f} s"
    if total > 60:
        fix = (
            "a slow disk or a busy machine: the first TensorFlow action waits this long"
        )
        return Check("engine", "warn", message, fix)
    return Check("engine", "ok", message)


def check_gpu(context: Context) -> Check:
    """List the GPUs TensorFlow sees, or say why it sees none."""
    if context.devices is None:
        return Check("gpu", "warn", "not checked: the engine did not start")
    gpus = [d for d in context.devices if d.kind == "GPU"]
    if gpus:
        found = ", ".join(f"{d.name} {d.description}".strip() for d in gpus)
        return Check("gpu", "ok", f"{found} (training uses it with --device auto)")
    driver = system.nvidia_driver()
    if driver is None:
        reason = "no NVIDIA driver on this machine: training runs on the CPU"
        return Check("gpu", "ok", f"none ({reason})")
    return _unused_gpu(driver)


def _unused_gpu(driver: str) -> Check:
    """Why TensorFlow sees no GPU although an NVIDIA driver is installed."""
    where = f"NVIDIA driver {driver} found, but TensorFlow sees no GPU"
    dist, build = system.tensorflow_dist(), system.build_info()
    if dist == "tensorflow-cpu" or not build.get("is_cuda_build"):
        fix = f'pip uninstall -y {dist}; pip install "tensorflow[and-cuda]"'
        return Check("gpu", "FAIL", f"{where}: {dist} is a CPU-only wheel", fix)
    if not system.cuda_libraries():
        fix = 'pip install "tensorflow[and-cuda]"'
        return Check("gpu", "FAIL", f"{where}: CUDA libraries missing", fix)
    fix = (
        f"check nvidia-smi; this TensorFlow needs a driver for CUDA "
        f"{build.get('cuda_version', '12')} or later"
    )
    return Check("gpu", "FAIL", where, fix)


# -- data and model ----------------------------------------------------------


def check_mnist(context: Context) -> Check:
    """Find MNIST in the data module's order and load it; never download."""
    path, origin = _mnist_location(context.mnist_path)
    if path is None:
        message = (
            "not found (no --mnist, MNIST_DIR unset, no Keras cache at "
            f"{data.keras_cache_path()}): training needs it, reading scans does not"
        )
        return Check("mnist", "warn", message, "set MNIST_DIR to the MNIST folder")
    try:
        context.mnist = data.load_mnist(path)
    except (data.MnistError, OSError) as exc:
        fix = f"point {origin} at a folder of the four MNIST IDX files or a mnist.npz"
        reason = str(exc).replace(data.HELP, "").strip()
        return Check("mnist", "FAIL", f"{origin}={path}: {reason}", fix)
    counts = f"{len(context.mnist.x_train)} + {len(context.mnist.x_test)} images"
    return Check("mnist", "ok", f"{origin}={path} ({counts})")


def check_model(context: Context) -> Check:
    """Check that the model loads in the engine and reads MNIST test digits."""
    from napari_digits.engine import protocol as p
    from napari_digits.engine.client import EngineError

    if context.devices is None:
        return Check("model", "warn", "not checked: the engine did not start")
    model = str(context.model)
    try:
        info = context.engine.call(p.Describe(model), timeout=TIMEOUT)
        if context.mnist is None:
            message = f"{context.model.name} ({info.params:,} parameters) loads"
            return Check("model", "ok", f"{message}; not scored: no MNIST")
        accuracy = _score(context, model)
    except EngineError as exc:
        return Check("model", "FAIL", f"{model}: {exc}", "train or load another model")
    message = (
        f"{context.model.name} ({info.params:,} parameters) reads "
        f"{round(accuracy * SCORE_DIGITS)} of {SCORE_DIGITS} MNIST test digits right"
    )
    if accuracy < MIN_ACCURACY:
        return Check("model", "FAIL", message, "retrain it: napari-digits train")
    return Check("model", "ok", message)


def _score(context: Context, model: str) -> float:
    """Return the model's accuracy on the first MNIST test digits."""
    from napari_digits.engine import protocol as p

    images = np.asarray(context.mnist.x_test[:SCORE_DIGITS])
    labels = np.asarray(context.mnist.y_test[:SCORE_DIGITS])
    probabilities = context.engine.call(p.Predict(model, images), timeout=TIMEOUT)
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


def check_fields(context: Context) -> Check:
    """Check that the model's field reader loads and reads lines of MNIST digits."""
    from napari_digits.engine import protocol as p
    from napari_digits.engine.client import EngineError

    if context.devices is None:
        return Check("fields", "warn", "not checked: the engine did not start")
    reader = reader_path(context.model)
    fix = "train it again: napari-digits train-fields"
    if reader != own_reader_path(context.model):
        fix = "reinstall napari-digits (the shipped field reader is damaged)"
    lines, truth = _mnist_lines(context.mnist)
    try:
        frames = context.engine.call(
            p.Predict(str(context.model), lines), timeout=TIMEOUT
        )
    except EngineError as exc:
        return Check("fields", "FAIL", f"{reader}: {exc}", fix)
    if context.mnist is None:
        return Check("fields", "ok", f"{reader.name} loads; not scored: no MNIST")
    right = sum(
        [d for d, _, _ in decode(f)] == t for f, t in zip(frames, truth, strict=True)
    )
    message = (
        f"{reader.name} reads {right} of {len(truth)} lines of "
        f"{LINE_DIGITS} MNIST test digits right"
    )
    if right < MIN_LINES * len(truth):
        return Check("fields", "FAIL", message, fix)
    return Check("fields", "ok", message)


def _mnist_lines(mnist) -> tuple[np.ndarray, list[list[int]]]:
    """Lines of ``LINE_DIGITS`` MNIST test digits side by side (blank without MNIST)."""
    if mnist is None:
        return np.zeros((1, FIELD_HEIGHT, FIELD_WIDTH), np.uint8), [[]]
    images, labels = mnist.x_test[:SCORE_DIGITS], mnist.y_test[:SCORE_DIGITS]
    lines, truth = [], []
    for k in range(0, len(labels) - LINE_DIGITS + 1, LINE_DIGITS):
        ink = np.concatenate(list(images[k : k + LINE_DIGITS]), axis=1)
        lines.append(field_image(ink.astype(np.float32) / 255)[0])
        truth.append([int(d) for d in labels[k : k + LINE_DIGITS]])
    return np.stack(lines), truth


CHECKS: tuple[tuple[str, Callable[[Context], Check]], ...] = (
    ("python", check_python),
    ("napari", check_napari),
    ("qt", check_qt),
    ("display", check_display),
    ("opengl", check_opengl),
    ("tensorflow", check_tensorflow),
    ("engine", check_engine),
    ("gpu", check_gpu),
    ("mnist", check_mnist),
    ("model", check_model),
    ("fields", check_fields),
)


#: the checks ``--quick`` skips
NEEDS_TENSORFLOW = ("engine", "gpu", "model", "fields")


# -- small helpers -----------------------------------------------------------


def _mnist_location(given: str | None) -> tuple[str | None, str]:
    """Return where MNIST would be read from and what named it (no download)."""
    if given:
        return given, "--mnist"
    if os.environ.get("MNIST_DIR"):
        return os.environ["MNIST_DIR"], "MNIST_DIR"
    cache = data.keras_cache_path()
    return (str(cache), "Keras cache") if cache.exists() else (None, "")


def _exit_reason(code: int | None) -> str:
    """Describe a subprocess's exit code (a signal by name)."""
    if code is not None and code < 0:
        import signal

        return f"the probe crashed ({signal.Signals(-code).name})"
    return f"the probe exited with status {code}"
