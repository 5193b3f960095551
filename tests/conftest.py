"""Shared test fixtures."""
import os

import torch

if not torch.cuda.is_available():  # Triton kernels run on the CPU with Triton's interpreter (set before its import)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a busy 2-core CPU, more threads make small passes much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
