"""Facts about this machine for ``napari-digits doctor``, read without Qt or TensorFlow.

Installed distributions and their versions, TensorFlow's build (from its
files: importing TensorFlow here is what the doctor must not do), the NVIDIA
driver and CUDA libraries, and which program serves an X display.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import importlib.util
import os
import re
import shutil
from pathlib import Path


def version(dist: str) -> str | None:
    """Return an installed distribution's version, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def tensorflow_dist() -> str | None:
    """Return the name of the installed TensorFlow distribution, or None."""
    names = ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tensorflow-intel")
    return next((name for name in names if version(name)), None)


def build_info() -> dict:
    """Read TensorFlow's build_info.py as text (importing it loads TensorFlow)."""
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(spec.submodule_search_locations[0], "python/platform/build_info.py")
    if not path.is_file():
        return {}
    text = path.read_text()
    info = {"is_cuda_build": "('is_cuda_build', True)" in text}
    match = re.search(r"\('cuda_version', '([^']*)'\)", text)
    if match:
        info["cuda_version"] = match.group(1)
    return info


def nvidia_driver() -> str | None:
    """Return the NVIDIA driver's version ("present" if unknown), or None."""
    version_file = Path("/proc/driver/nvidia/version")
    if version_file.is_file():
        match = re.search(r"Kernel Module\s+(\S+)", version_file.read_text())
        return match.group(1) if match else "present"
    if shutil.which("nvidia-smi") or ctypes.util.find_library("cuda"):
        return "present"
    return None


def cuda_libraries() -> bool:
    """Whether the CUDA libraries TensorFlow loads (cuDNN, cuBLAS) are found."""
    wheels = ("nvidia-cudnn-cu12", "nvidia-cublas-cu12")
    return all(version(name) for name in wheels) or bool(
        ctypes.util.find_library("cudnn") and ctypes.util.find_library("cublas")
    )


def x_server(display: str) -> str | None:
    """Return the program serving a local X ``display`` (``"Xvfb"``), or None."""
    match = re.fullmatch(r"(?:unix)?:(\d+)(?:\.\d+)?", display)
    if match is None:
        return None
    socket = f"/tmp/.X11-unix/X{match.group(1)}"
    try:
        table = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return None
    inodes = {f"socket:[{row.split()[6]}]" for row in table if row.endswith(socket)}
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                return (fd.parent.parent / "comm").read_text().strip()
        except OSError:
            continue
    return None
