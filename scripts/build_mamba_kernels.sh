#!/usr/bin/env bash
# Build wheels of the fused Mamba kernels (causal-conv1d, mamba-ssm) from their source distributions, offline, on a
# machine with a CUDA GPU, nvcc and a CUDA build of torch: mamba_qa's `cuda` extra.
#
#   scripts/build_mamba_kernels.sh download DIR     # where PyPI is reachable: the two sdists, einops, ninja into DIR
#   scripts/build_mamba_kernels.sh build DIR OUT    # on the GPU machine (no network): wheels into OUT, then checked
#
# Then: python -m pip install --no-index --no-deps OUT/*.whl (or --target DIR with PYTHONPATH=DIR). Without
# --no-deps pip would want mamba-ssm's other dependencies (tilelang, quack-kernels, apache-tvm-ffi: Mamba-3 only).
#
# Settings (environment):
#   CUDA_ARCHS   compute capabilities to compile for, e.g. "90" (H100/H200) or "80 90"; default: this machine's
#                GPU, as torch reports it. Both setup.py files ignore TORCH_CUDA_ARCH_LIST and pass their own
#                -gencode list (sm_75 to sm_121 with nvcc 13), so their list is cut to these: one architecture
#                builds in a fraction of the time.
#   MAX_JOBS     parallel compile jobs (ninja), default: the CPU count.
#   PYTHON       the Python whose torch the kernels are built against, default: python3.
#   CAUSAL_CONV1D_VERSION, MAMBA_SSM_VERSION   default 1.7.0 and 2.3.2.post1, the versions this was written against.
#
# What each setup.py needs, read from the sdists: FORCE_BUILD=TRUE (CAUSAL_CONV1D_FORCE_BUILD, MAMBA_FORCE_BUILD),
# otherwise their bdist_wheel first tries to download a prebuilt wheel from GitHub; torch imported at build time,
# hence --no-build-isolation (isolation would install a CPU torch from PyPI); setuptools, wheel, packaging and
# ninja in that Python; nvcc 11.6 or newer (CUDA_HOME or on PATH).
set -euo pipefail

CAUSAL_CONV1D_VERSION=${CAUSAL_CONV1D_VERSION:-1.7.0}
MAMBA_SSM_VERSION=${MAMBA_SSM_VERSION:-2.3.2.post1}
PYTHON=${PYTHON:-python3}

usage() { sed -n '2,9p' "$0" >&2; exit 2; }

download() {
  local dir=$1
  mkdir -p "$dir"
  # Metadata of these sdists is computed by running setup.py, which imports torch and would compile: skip the CUDA
  # part for that step only (the build step compiles).
  MAMBA_SKIP_CUDA_BUILD=TRUE CAUSAL_CONV1D_SKIP_CUDA_BUILD=TRUE \
    "$PYTHON" -m pip download --no-deps --no-binary :all: --no-build-isolation -d "$dir" \
    "causal-conv1d==$CAUSAL_CONV1D_VERSION" "mamba-ssm==$MAMBA_SSM_VERSION"
  "$PYTHON" -m pip download --no-deps --only-binary :all: -d "$dir" einops ninja
  ls -l "$dir"
}

# Cut a setup.py's hard-coded -gencode pairs to the architectures in $archs; a dropped pair becomes `pass` so an
# `if nvcc >= X:` block left empty stays valid Python.
cut_architectures() {
  local setup=$1 archs=$2
  "$PYTHON" - "$setup" "$archs" <<'PY'
import re
import sys

path, wanted = sys.argv[1], set(sys.argv[2].split())
text = open(path).read()
pair = re.compile(r'^(\s*)cc_flag\.append\("-gencode"\)\n\s*cc_flag\.append\("arch=compute_(\d+)a?,code=sm_\d+a?"\)\n',
                  re.MULTILINE)
found = {match.group(2) for match in pair.finditer(text)}
missing = wanted - found
if not found or missing:
    sys.exit(f"{path}: no -gencode pair for sm_{', sm_'.join(sorted(missing or wanted))} "
             f"(it lists sm_{', sm_'.join(sorted(found)) or 'none'}); set CUDA_ARCHS to some of those")
text = pair.sub(lambda m: m.group(0) if m.group(2) in wanted else f"{m.group(1)}pass  # sm_{m.group(2)} not built\n",
                text)
open(path, "w").write(text)
print(f"{path}: building for sm_{', sm_'.join(sorted(wanted))} (setup.py lists {len(found)} architectures)")
PY
}

build() {
  local dir=$1 out=$2
  local work archs
  command -v nvcc >/dev/null || [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] || {
    echo "build: nvcc not found (set CUDA_HOME or put nvcc on PATH)" >&2; exit 1; }
  # ninja from DIR when this Python lacks it (the download step fetches its wheel).
  if ! "$PYTHON" -c "import ninja" 2>/dev/null && compgen -G "$dir/ninja-*.whl" >/dev/null; then
    local tools
    tools=$(mktemp -d)
    "$PYTHON" -m pip install -q --no-index --no-deps --target "$tools" "$dir"/ninja-*.whl
    export PATH="$tools/bin:$PATH" PYTHONPATH="$tools${PYTHONPATH:+:$PYTHONPATH}"
  fi
  "$PYTHON" - <<'PY' || exit 1
import importlib.util
import sys

import torch

missing = [name for name in ("setuptools", "wheel", "packaging", "ninja") if importlib.util.find_spec(name) is None]
if missing:
    sys.exit(f"build: this Python lacks {', '.join(missing)} (needed with --no-build-isolation)")
if not torch.version.cuda:
    sys.exit(f"build: torch {torch.__version__} is not a CUDA build")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
  archs=${CUDA_ARCHS:-$("$PYTHON" -c 'import torch; print("%d%d" % torch.cuda.get_device_capability())')}
  export MAX_JOBS=${MAX_JOBS:-$(nproc)}
  work=$(mktemp -d)
  mkdir -p "$out"
  for package in "causal_conv1d-$CAUSAL_CONV1D_VERSION" "mamba_ssm-$MAMBA_SSM_VERSION"; do
    [ -f "$dir/$package.tar.gz" ] || { echo "build: $dir/$package.tar.gz is missing (run: $0 download $dir)" >&2; exit 1; }
    tar -xzf "$dir/$package.tar.gz" -C "$work"
    cut_architectures "$work/$package/setup.py" "$archs"
    echo "building $package (MAX_JOBS=$MAX_JOBS) ..."
    local began=$SECONDS
    CAUSAL_CONV1D_FORCE_BUILD=TRUE MAMBA_FORCE_BUILD=TRUE \
      "$PYTHON" -m pip wheel --no-build-isolation --no-deps --no-index -w "$out" "$work/$package"
    echo "$package built in $((SECONDS - began)) s"
  done
  cp "$dir"/einops-*.whl "$out"/ 2>/dev/null || echo "note: no einops wheel in $dir; mamba-ssm imports einops" >&2
  # Check: the wheels install into a scratch directory and their CUDA extensions import and run.
  local site
  site=$(mktemp -d)
  "$PYTHON" -m pip install -q --no-index --no-deps --target "$site" "$out"/*.whl
  PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - <<'PY'
import torch
from causal_conv1d import causal_conv1d_fn
from causal_conv1d.causal_conv1d_interface import causal_conv1d_ref
from mamba_ssm.ops.selective_scan_interface import selective_scan_fn, selective_scan_ref

torch.manual_seed(0)
x, weight, bias = (torch.randn(2, 64, 128, device="cuda"), torch.randn(64, 4, device="cuda"),
                   torch.randn(64, device="cuda"))
conv = (causal_conv1d_fn(x, weight, bias, activation="silu") - causal_conv1d_ref(x, weight, bias, activation="silu"))
u, delta = torch.randn(2, 64, 128, device="cuda"), torch.rand(2, 64, 128, device="cuda")
A, B, C, D = (-torch.rand(64, 16, device="cuda"), torch.randn(2, 16, 128, device="cuda"),
              torch.randn(2, 16, 128, device="cuda"), torch.randn(64, device="cuda"))
scan = selective_scan_fn(u, delta, A, B, C, D) - selective_scan_ref(u, delta, A, B, C, D)
print(f"causal_conv1d max |fused - reference| {conv.abs().max():.2e}; selective_scan {scan.abs().max():.2e}")
assert conv.abs().max() < 1e-3 and scan.abs().max() < 1e-3
PY
  ls -l "$out"
}

case ${1:-} in
  download) [ $# -eq 2 ] || usage; download "$2" ;;
  build) [ $# -eq 3 ] || usage; build "$2" "$3" ;;
  *) usage ;;
esac
