"""scripts/bench_sparsity.py measures on a GPU only; without one it says so and exits 2."""

import subprocess
import sys

import pytest
import torch
from e2e import REPO


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script would measure")
def test_without_a_gpu_the_sparsity_benchmark_refuses_naming_why(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_sparsity.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr
