"""Keep glibc's malloc from handing request-sized buffers back to the kernel after every request.

A request or response body of tens of KiB is allocated by Python through malloc, used once, and
freed. With glibc's defaults the freed memory at the top of the heap is returned to the kernel
(brk) as soon as 128 KiB are free there, and the next request grows the heap again: every page
of it is faulted in and zeroed anew. Measured on the 64 KiB echo benchmark: 16 page faults a
request and twice granian's kernel time per request; with the settings below the worker keeps
those pages, the faults stop, and req/s rose from ~17.5k to ~24.5k for ~2 MiB more RSS a worker.

The settings are the documented mallopt() knobs (the same ones the MALLOC_*_ environment
variables set); a variable already set in the environment wins, so an operator can restore
glibc's defaults, e.g. MALLOC_TRIM_THRESHOLD_=131072. On a libc other than glibc nothing changes.
"""

import ctypes
import os
import platform

# mallopt() parameter numbers, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

SETTINGS = (
    # Free memory at the top of the heap is kept up to this much before it is returned.
    (M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", 8 * 1024 * 1024),
    # Grow the heap in steps of at least this much, so a body does not grow it page by page.
    (M_TOP_PAD, "MALLOC_TOP_PAD_", 1024 * 1024),
    # Blocks above this size still get their own mmap (returned at free): big bodies are rare.
    (M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", 1024 * 1024),
)


def tune() -> bool:
    """Apply SETTINGS to this process; True if glibc took them."""
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    ok = True
    for param, env_name, value in SETTINGS:
        if env_name in os.environ:
            continue
        ok = bool(mallopt(param, value)) and ok
    return ok
