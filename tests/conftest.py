"""Suite-wide settings.

One intra-op thread everywhere, for this process and for the servers and workers the
tests start (they inherit the environment): the tests use tiny networks, and on a
2-core machine with a server, a worker and pytest all busy, OpenMP's spinning
thread teams slow per-time-step kernels down by orders of magnitude.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402  (after the thread settings, which torch reads at import)

torch.set_num_threads(1)
