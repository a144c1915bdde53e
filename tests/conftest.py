"""Suite-wide settings: one torch thread per test.

The suite runs on 2-core machines; the tiny tensors of unit tests are slower with more
threads, and a fixed count keeps float results independent of the machine.
"""

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch  # imported here so that collecting torch-free tests stays light

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
