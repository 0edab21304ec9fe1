"""The allocator setting that keeps freed page-sized blocks for reuse."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Allocate and free a page-sized array 20 times; print the page faults.
FAULTS = """
import resource, sys
import numpy as np
from napari_digits.allocator import reuse_freed_memory
SIZE = 40 * 2**20  # an A4 page at 300 dpi in float32 is 35 MiB
took = reuse_freed_memory() if sys.argv[1] == "reuse" else None
np.ones(SIZE, np.uint8)  # the first one faults either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    np.ones(SIZE, np.uint8)
print(took, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[str, int]:
    """Page faults of 20 page-sized arrays, in a process set as a Dask worker."""
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}  # Dask's nanny sets it
    done = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    took, count = done.stdout.split()
    return took, int(count)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_page_sized_arrays_are_reused_not_faulted_in_again():
    took, reused = faults("reuse")
    _, default = faults("default")
    assert took == "True"
    assert default >= 20 * 20  # at least one fault a 2 MiB huge page, each time
    assert reused <= default / 10
