"""Silence file descriptor 2 around noisy native code (no TensorFlow here)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_fd2() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration of the block.

    C and C++ libraries (TensorFlow's) write to the descriptor itself, past
    ``sys.stderr``; a child process started in the block inherits the quiet
    descriptor.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
