"""The README's set-up commands: ``.ci/dev``'s decisions and the napari session.

``.ci/dev`` runs here with stand-ins for ``id``, ``sudo``, ``dpkg-query`` and
``apt-get`` on the PATH, so that every branch (root, sudo, neither, apt-get
failing) runs without touching the machine's packages.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MISSING = ["xvfb", "libxcb-cursor0"]

STUBS = {
    "id": 'echo "$FAKE_UID"',
    "sudo": '[ "$FAKE_SUDO" = ok ] || exit 1\n[ "$1" = -n ] && shift\nexec "$@"',
    "dpkg-query": 'grep -qx -- "${@: -1}" "$FAKE_INSTALLED" && '
    'printf "install ok installed"',
    "apt-get": 'echo "$(id -u) apt-get $*" >>"$FAKE_LOG"\n'
    '[ "$FAKE_APT" = fail ] && { echo "E: Unable to locate package"; exit 100; }\n'
    'if [ "$1" = install ]; then for p in "$@"; do echo "$p" >>"$FAKE_INSTALLED"; '
    "done; fi\nexit 0",
}


def apt_packages() -> list[str]:
    """The APT_PACKAGES array of .ci/dev, read by bash."""
    script = (
        'eval "$(sed -n "/^APT_PACKAGES=(/,/^)/p" .ci/dev)"; '
        'printf "%s\\n" "${APT_PACKAGES[@]}"'
    )
    done = subprocess.run(
        ["bash", "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


@pytest.fixture
def fake_system(tmp_path):
    """A PATH with the stand-ins, and everything installed but MISSING."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in STUBS.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    installed = tmp_path / "installed"
    installed.write_text("".join(f"{p}\n" for p in apt_packages() if p not in MISSING))
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHON": sys.executable,
        "FAKE_INSTALLED": str(installed),
        "FAKE_LOG": str(tmp_path / "apt.log"),
        "FAKE_UID": "0",
        "FAKE_SUDO": "no",
    }
    return env, tmp_path / "apt.log"


def ci_dev(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", ".ci/dev", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_the_list_holds_xvfb_qt_libraries_and_the_fonts():
    listed = apt_packages()
    for package in ("xvfb", "libxcb-cursor0", "fonts-dejavu-core", "fonts-liberation"):
        assert package in listed
    assert "fonts-freefont-ttf" in listed
    assert len(listed) == len(set(listed))


def test_root_installs_what_is_missing(fake_system):
    env, log = fake_system
    done = ci_dev("system", env=env)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert calls[0] == "0 apt-get update -qq"
    assert calls[1].startswith("0 apt-get install -y -qq")
    assert calls[1].split()[-2:] == MISSING
    assert "installing missing system packages: xvfb libxcb-cursor0" in done.stdout
    assert ci_dev("system", env=env).returncode == 0  # now nothing is missing
    assert len(log.read_text().splitlines()) == 2


def test_sudo_without_a_password_installs(fake_system):
    env, log = fake_system
    env.update(FAKE_UID="1000", FAKE_SUDO="ok")
    done = ci_dev("system", env=env)
    assert done.returncode == 0, done.stderr
    assert "apt-get install" in log.read_text()


def test_no_root_no_sudo_is_one_line_with_the_command(fake_system):
    env, log = fake_system
    env["FAKE_UID"] = "1000"
    for command in ("system", "test", "napari"):
        done = ci_dev(command, env=env)
        assert done.returncode == 1
        assert done.stdout == ""
        assert done.stderr == (
            "error: missing system packages: xvfb libxcb-cursor0; "
            "run: sudo apt-get install -y xvfb libxcb-cursor0\n"
        )
    assert not log.exists()


def test_apt_get_failing_names_the_command(fake_system):
    env, _ = fake_system
    env["FAKE_APT"] = "fail"
    done = ci_dev("system", env=env)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "error: could not install system packages: xvfb libxcb-cursor0; "
        "run: sudo apt-get install -y xvfb libxcb-cursor0"
    )


@pytest.mark.parametrize(
    ("display", "said"),
    [
        (None, "no display (DISPLAY and WAYLAND_DISPLAY are unset)"),
        (":4242", "display :4242 is not running (no /tmp/.X11-unix/X4242)"),
    ],
)
def test_napari_without_a_display_says_so_in_one_line(fake_system, display, said):
    env, _ = fake_system
    Path(env["FAKE_INSTALLED"]).write_text("\n".join(apt_packages()) + "\n")
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("DISPLAY", None)
    if display:
        env["DISPLAY"] = display
    done = ci_dev("napari", env=env)
    assert done.returncode == 1
    assert done.stderr == (
        f"error: {said}: run it on a desktop, or headless: "
        "xvfb-run -a bash .ci/dev napari\n"
    )


def test_the_napari_session_docks_four_widgets_without_a_pyqt5_warning():
    env = {k: v for k, v in os.environ.items() if k not in ("QT_API", "PYTEST_QT_API")}
    done = subprocess.run(
        [sys.executable, ".ci/launch_napari.py", "--smoke", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for name in ("Kernels", "Learned filters", "Training", "Read digits"):
        assert f"{name} (napari-digits)" in out
    assert "layers: portrait" in out
    if importlib.util.find_spec("PyQt6"):
        assert "qt: pyqt6" in out
    assert "PyQt5" not in out + done.stderr


@pytest.mark.skipif(not importlib.util.find_spec("PyQt5"), reason="PyQt5 not installed")
def test_the_widgets_still_work_with_pyqt5():
    code = (
        "import napari, qtpy\n"
        "from napari_digits._widgets.kernels import KernelsWidget\n"
        "from napari_digits._widgets.scan import ScanWidget\n"
        "viewer = napari.Viewer(show=False)\n"
        "viewer.open_sample('napari-digits', 'portrait')\n"
        "for widget in (KernelsWidget(viewer), ScanWidget(viewer)):\n"
        "    viewer.window.add_dock_widget(widget)\n"
        "print(qtpy.API_NAME, len(viewer.window.dock_widgets))\n"
        "viewer.close()\n"
    )
    env = {**os.environ, "QT_API": "pyqt5", "PYTEST_QT_API": "pyqt5"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["PyQt5", "2"]


@pytest.fixture
def fake_repo(fake_system, tmp_path):
    """A copy of .ci/dev whose .venv holds a stand-in python that logs pytest runs.

    The stand-in exits with the next code of ``FAKE_RC`` ("0 5": 0, then 5).
    """
    env, _ = fake_system
    Path(env["FAKE_INSTALLED"]).write_text("\n".join(apt_packages()) + "\n")
    repo = tmp_path / "repo"
    (repo / ".ci").mkdir(parents=True)
    (repo / ".ci/dev").write_text((REPO / ".ci/dev").read_text())
    (repo / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    venv_bin = repo / ".venv/bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(
        "#!/usr/bin/env bash\n"
        'echo "$*" >>"$FAKE_RUNS"\n'
        'n=$(wc -l <"$FAKE_RUNS")\n'
        'exit "$(echo $FAKE_RC | cut -d" " -f"$n")"\n'
    )
    (venv_bin / "python").chmod(0o755)
    stamp = subprocess.run(
        ["sha256sum", "pyproject.toml"], cwd=repo, capture_output=True, text=True
    ).stdout.split()[0]
    (repo / ".venv/.napari-digits-installed").write_text(stamp + "\n")
    xvfb = Path(env["PATH"].split(":")[0]) / "Xvfb"
    xvfb.write_text("#!/bin/sh\n")
    xvfb.chmod(0o755)
    env["FAKE_RUNS"] = str(tmp_path / "runs")
    return repo, env


@pytest.mark.parametrize(
    ("codes", "status"), [("0 0", 0), ("1 0", 1), ("0 1", 1), ("0 5", 5), ("5 0", 5)]
)
def test_the_whole_suite_is_the_default_run_then_the_slow_tests(
    fake_repo, codes, status
):
    repo, env = fake_repo
    env["FAKE_RC"] = codes
    done = subprocess.run(
        ["bash", ".ci/dev", "test"], cwd=repo, env=env, capture_output=True, text=True
    )
    assert done.returncode == status
    runs = Path(env["FAKE_RUNS"]).read_text().splitlines()
    assert runs == ["-m pytest", "-m pytest -m slow"]  # both, whatever the first did
    if "5" in codes:
        assert "error: pytest collected no tests" in done.stderr


def test_arguments_go_to_pytest_alone(fake_repo):
    repo, env = fake_repo
    env["FAKE_RC"] = "5"
    args = ["tests/test_x.py", "-k", "a or b"]
    done = subprocess.run(
        ["bash", ".ci/dev", "test", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 5
    assert Path(env["FAKE_RUNS"]).read_text().splitlines() == [
        "-m pytest tests/test_x.py -k a or b"
    ]
    assert done.stderr.strip() == (
        "error: pytest collected no tests (tests/test_x.py -k a or b)"
    )
