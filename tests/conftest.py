"""Shared pytest fixtures. Each helper keeps its fixtures in its own section."""

import pytest

# -- synthetic benchmark (goz.synthetic) --------------------------------------------------------------


@pytest.fixture(scope="session")
def synthetic_benchmark(tmp_path_factory):
    """The quick miniature GOZ benchmark (40 seen, 20 unseen classes, 512-d features), generated once per session."""
    from goz.demo import QUICK_SIZES
    from goz.synthetic import make_benchmark
    return make_benchmark(tmp_path_factory.mktemp("synthetic"), seed=0, **QUICK_SIZES)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny matrices: on a busy 2-core machine torch's thread pool only adds contention."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
