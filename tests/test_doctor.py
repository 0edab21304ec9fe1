"""``napari-digits doctor``: the real command in a subprocess, then its reasoning."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from napari_digits.cli import _system as system
from napari_digits.cli import doctor

REPO = Path(__file__).resolve().parents[1]
NAMES = [name for name, _ in doctor.CHECKS]
#: what TensorFlow prints while it starts, which must not reach the terminal
TF_NOISE = ("oneDNN", "cuInit", "cuda drivers", "absl", "TF_ENABLE_ONEDNN_OPTS")


def run_doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "napari_digits", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def lines_by_check(stdout: str) -> dict[str, str]:
    lines = {}
    for line in stdout.splitlines():
        status, _, rest = line.partition("  ")
        name = rest.strip().split(" ")[0]
        if status.strip() in doctor.STATUSES and name in NAMES:
            lines[name] = line
    return lines


def test_doctor_on_a_working_installation(mnist_dir):
    env = {**os.environ, "MNIST_DIR": str(mnist_dir), "QT_API": "pyqt6"}
    done = run_doctor(env=env)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    lines = lines_by_check(out)
    assert list(lines) == NAMES, out
    assert not any(line.startswith("FAIL") for line in lines.values()), out
    assert out.splitlines()[-1] == "all checks passed"
    assert "PyQt6" in lines["qt"] and lines["qt"].startswith("ok")
    assert "Xvfb" in lines["display"]  # pytest-xvfb's virtual display
    assert "OpenGL" in lines["opengl"]
    if "llvmpipe" in lines["opengl"]:
        assert "software rendering" in lines["opengl"]
        assert "TensorFlow must stay out of the viewer" in lines["opengl"]
    assert "TensorFlow ready in" in lines["engine"]
    assert f"MNIST_DIR={mnist_dir}" in lines["mnist"]
    reads = lines["model"].split(" reads ")[1]
    assert int(reads.split(" of ")[0]) >= 90, lines["model"]
    assert lines["fields"].startswith("ok") and "fields.keras reads" in lines["fields"]
    reads = lines["fields"].split(" reads ")[1]
    assert int(reads.split(" of ")[0]) >= 22 and " of 25 lines" in reads, reads
    assert "Traceback" not in out + done.stderr
    for noise in TF_NOISE:
        assert noise not in out + done.stderr, noise


def test_doctor_names_the_fix_for_each_failed_check(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")
    }
    env["MNIST_DIR"] = str(tmp_path)  # an empty folder
    done = run_doctor("--quick", env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = lines_by_check(done.stdout)
    assert list(lines) == [n for n in NAMES if n not in doctor.NEEDS_TENSORFLOW]
    assert lines["display"].startswith("FAIL")
    assert "fix: " in lines["display"] and "xvfb-run -a" in lines["display"]
    assert lines["mnist"].startswith("FAIL") and str(tmp_path) in lines["mnist"]
    assert "fix: point MNIST_DIR at" in lines["mnist"]
    assert lines["python"].startswith("ok") and lines["napari"].startswith("ok")
    assert "2 check(s) failed: display, mnist" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_mnist_missing_everywhere_is_a_warning_and_nothing_is_downloaded(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    check = doctor.check_mnist(doctor.Context())
    assert check.status == "warn" and "not found" in check.message
    assert "MNIST_DIR" in check.fix
    assert not (tmp_path / "keras").exists()


def test_a_damaged_field_reader_is_named_with_its_fix(tmp_path):
    from napari_digits.engine.client import EngineError

    class Broken:
        def call(self, request, timeout=None):
            raise EngineError("cannot load the model: not a zip file")

    model = tmp_path / "mine.keras"
    model.write_bytes(b"")
    context = doctor.Context(model=model, engine=Broken(), devices=[])
    check = doctor.check_fields(context)
    assert check.status == "FAIL" and "resources/fields.keras" in check.message
    assert "reinstall" in check.fix  # the shipped reader, as mine.keras has none
    (tmp_path / "mine.fields.keras").write_bytes(b"junk")
    check = doctor.check_fields(context)
    assert check.status == "FAIL" and "mine.fields.keras" in check.message
    assert "train-fields" in check.fix
    assert doctor.check_fields(doctor.Context()).status == "warn"  # no engine


def test_llvmpipe_is_named_with_what_it_implies():
    info = {
        "renderer": "llvmpipe (LLVM 15.0.6, 256 bits)",
        "version": "4.5 Mesa 22.3.6",
        "platform": "xcb",
    }
    check = doctor._renderer_check(info)
    assert check.status == "warn"
    assert "software rendering" in check.message and "TensorFlow" in check.message
    info["renderer"] = "NVIDIA GeForce RTX 4090/PCIe/SSE2"
    assert doctor._renderer_check(info).status == "ok"


@pytest.mark.parametrize(
    ("dist", "cuda_build", "libraries", "fix"),
    [
        ("tensorflow-cpu", False, True, "pip uninstall -y tensorflow-cpu"),
        ("tensorflow", True, False, 'pip install "tensorflow[and-cuda]"'),
        ("tensorflow", True, True, "check nvidia-smi"),
    ],
)
def test_why_tensorflow_sees_no_gpu(monkeypatch, dist, cuda_build, libraries, fix):
    monkeypatch.setattr(system, "tensorflow_dist", lambda: dist)
    build = {"is_cuda_build": cuda_build, "cuda_version": "12.5.1"}
    monkeypatch.setattr(system, "build_info", lambda: build)
    monkeypatch.setattr(system, "cuda_libraries", lambda: libraries)
    monkeypatch.setattr(system, "nvidia_driver", lambda: "550.54")
    context = doctor.Context(devices=[])
    check = doctor.check_gpu(context)
    assert check.status == "FAIL" and "550.54" in check.message
    assert fix in check.fix


def test_no_driver_means_cpu_and_is_fine(monkeypatch):
    monkeypatch.setattr(system, "nvidia_driver", lambda: None)
    check = doctor.check_gpu(doctor.Context(devices=[]))
    assert check.status == "ok" and "no NVIDIA driver" in check.message


def test_qt_packages_named_by_doctor_are_installed_by_ci_dev():
    listed = subprocess.run(
        [
            "bash",
            "-c",
            'eval "$(sed -n "/^APT_PACKAGES=(/,/^)/p" .ci/dev)"; '
            'printf "%s\\n" "${APT_PACKAGES[@]}"',
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert set(doctor.QT_APT_PACKAGES.split()) <= set(listed)


#: what Qt 6 prints when a system library of its xcb plugin is missing
QT_WITHOUT_XCB_CURSOR = (
    "qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load "
    "the Qt xcb platform plugin.\n"
    'qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though '
    "it was found.\n"
)
QT_WITHOUT_XKBCOMMON = (
    "Cannot load library /v/PyQt6/Qt6/plugins/platforms/libqxcb.so: "
    "(libxkbcommon-x11.so.0: cannot open shared object file: No such file or "
    "directory)\n"
    'qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even though '
    "it was found.\n"
)


@pytest.mark.parametrize(
    ("stderr", "named"),
    [
        (QT_WITHOUT_XCB_CURSOR, "libxcb-cursor0"),
        (QT_WITHOUT_XKBCOMMON, "libxkbcommon-x11.so.0"),
    ],
)
def test_a_qt_library_missing_is_named_with_the_apt_command(stderr, named):
    probe = subprocess.CompletedProcess([], -6, "", stderr)
    check = doctor._probe_failure(probe, "")
    assert check.status == "FAIL"
    assert check.message == f"Qt cannot load its display plugin (missing: {named})"
    assert (
        check.fix.startswith("sudo apt-get install -y ")
        and "libxcb-cursor0" in check.fix
    )


def test_a_crashing_probe_is_named_by_its_signal():
    check = doctor._probe_failure(subprocess.CompletedProcess([], -11, "", ""), "")
    assert check.status == "FAIL" and "SIGSEGV" in check.message
