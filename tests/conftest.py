import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # The tests use tiny tensors: on a 2-core (often shared) machine torch's thread pool
    # only adds hand-off stalls, and no result depends on the thread count.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["cpu-kernels", "formulas"])
def pool_impl(request, monkeypatch):
    """Run a pool test twice: with the CPU kernels (what a CPU call uses) and with the
    plain-torch formulas alone (what every other device, compile and export use)."""
    if request.param == "formulas":
        from globalpool.pool import dispatch

        monkeypatch.setattr(dispatch, "KERNELS", {})
    return request.param
