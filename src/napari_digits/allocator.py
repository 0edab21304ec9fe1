"""Keep freed page-sized buffers for reuse instead of handing them back at once.

Reading a page allocates and frees many arrays of a page's size (an A4 page
at 300 dpi is 8.7 Mpx). glibc serves such blocks with ``mmap`` and returns
them on ``free``, so every new one is zeroed again by the kernel: a third of
a page's time was page faults, more in a Dask worker, whose nanny sets
``MALLOC_TRIM_THRESHOLD_=65536``. Raising the thresholds keeps those blocks
in the heap for the next array (at most ``trim`` bytes of freed memory are
kept). Pure core: no Qt, no TensorFlow.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: blocks below this come from the heap, not from mmap (bytes)
MMAP_THRESHOLD = 64 * 2**20
#: freed memory at the top of the heap kept for reuse (bytes)
TRIM_THRESHOLD = 256 * 2**20


def reuse_freed_memory(
    *, mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD
) -> bool:
    """Make this process's allocator reuse freed page-sized blocks (glibc only).

    Parameters
    ----------
    mmap_threshold : int
        Blocks smaller than this many bytes come from the heap.
    trim_threshold : int
        Free memory at the top of the heap up to this many bytes is kept.

    Returns
    -------
    bool
        True where glibc took both settings; False elsewhere (nothing changes).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))
        and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold))
    )
