"""Suite-wide settings: one torch thread per test, and the ``--long`` option.

The suite runs on 2-core machines; the tiny tensors of unit tests are slower with more
threads, and a fixed count keeps float results independent of the machine.

``pytest --long`` runs the full counts of the reliability suite (tests/reliability: 20
kills in a row per executor, hundreds of fuzzing examples); CI runs the short counts.
"""

from collections.abc import Iterator

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="run the reliability suite at its full counts (minutes)")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch  # imported here so that collecting torch-free tests stays light

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
