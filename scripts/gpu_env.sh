#!/usr/bin/env bash
# On the GPU machine (the device tool, carrying .data and .whl from scripts/prepare_gpu_carry.sh): install the
# carried wheels the machine needs into /tmp/site and put it first on PYTHONPATH, set SQUAD_QA_COMMIT, then run the
# command:
#   SQUAD_QA_COMMIT=<commit> scripts/gpu_env.sh scripts/gpu_speed_suite.sh "$OUT"
# - .whl/mlflow: mlflow-skinny and its dependencies, only those the machine lacks;
# - .whl/tok: tokenizers 0.23.3, always (the machine's 0.23.2 cuts overflow windows short,
#   huggingface/tokenizers#2091, so make_windows would fall back to that slow, lossy pair encoding).
# SQUAD_QA_COMMIT: as given, else git's HEAD (+dirty for a changed tree); the device's copy of .git can be stale.
set -u
python3 - <<'PY'
import glob
import importlib.metadata as metadata
import re
import subprocess
import sys

wheels = sorted(glob.glob(".whl/tok/tokenizers-*.whl"))
for wheel in sorted(glob.glob(".whl/mlflow/*.whl")):
    name = re.split(r"-\d", wheel.split("/")[-1], maxsplit=1)[0].replace("_", "-")
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        wheels.append(wheel)
print(f"installing {len(wheels)} carried wheels into /tmp/site")
if wheels:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--upgrade", "--no-index", "--no-deps",
                    "--target", "/tmp/site", *wheels], check=False)
PY
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} MLFLOW_ALLOW_FILE_STORE=true
if [ -z "${SQUAD_QA_COMMIT:-}" ]; then
  SQUAD_QA_COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  [ -n "$(git status --porcelain 2>/dev/null)" ] && SQUAD_QA_COMMIT="$SQUAD_QA_COMMIT+dirty"
fi
export SQUAD_QA_COMMIT
"$@"
