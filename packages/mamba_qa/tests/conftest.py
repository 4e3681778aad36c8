"""mamba_qa's tests run torch on one thread: at tiny sizes every operation takes microseconds and threads only
wait for each other (on the 2-core machine, shared with other jobs, two threads made the tiny model 10-30x slower)."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
