"""glibc's malloc tuned at ``import jconv`` (``jconv/_src/host_memory.py``): freed memory kept for reuse.

Each case runs in a fresh interpreter (the tuning happens once per process, at import): a large
buffer allocated, written and freed repeatedly, as XLA:CPU does with each step's temporaries, page
faults once when tuned and on every round with glibc's defaults; the opt-outs leave glibc alone.
"""

import os
import subprocess
import sys

import pytest

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

_PROGRAM = r"""
import resource, threading
import numpy as np
import jconv
from jconv._src import host_memory
faults = []
def rounds():  # on a thread of its own, as XLA's worker threads allocate
    for _ in range(6):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = np.ones(20_000_000, np.float32)  # 80 MB, every page written
        del a
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
t = threading.Thread(target=rounds)
t.start(); t.join()
print(host_memory.keep_freed_memory())
print(sum(faults[2:]))
"""


def _run(**env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "JCONV_MALLOC"}
    out = subprocess.run([sys.executable, "-c", _PROGRAM], env=full | env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    detail, faults = out.stdout.strip().splitlines()[-2:]
    return detail, int(faults), out.stderr


@glibc
def test_freed_buffers_are_reused_without_page_faults():
    detail, tuned, _ = _run()
    assert detail.startswith("glibc malloc: one arena, no mmap"), detail
    _, default, _ = _run(JCONV_MALLOC="system")
    # 4 rounds of 80 MB mapped afresh: ~78,000 faults of 4 KiB pages, or ~160 of 2 MiB ones where
    # NumPy's huge-page advice is taken (456 measured); next to none when the heap keeps the memory
    assert tuned * 20 < default, (tuned, default)


@glibc
@pytest.mark.parametrize("env, says", [({"JCONV_MALLOC": "system"}, "as configured (JCONV_MALLOC=system)"),
                                       ({"MALLOC_ARENA_MAX": "2"}, "as configured (MALLOC_ARENA_MAX)"),
                                       ({"JCONV_MALLOC": "keep"}, "glibc malloc: one arena")])
def test_the_user_choice_wins(env, says):
    detail, _, _ = _run(**env)
    assert says in detail, detail


def test_a_bad_setting_warns_and_changes_nothing():
    detail, _, stderr = _run(JCONV_MALLOC="jemalloc")
    assert "as it is (bad JCONV_MALLOC)" in detail
    assert "JCONV_MALLOC must be 'keep', 'system' or unset, got 'jemalloc'" in stderr
