#!/usr/bin/env bash
# On the GPU machine (the device tool, carrying .data and .whl from scripts/prepare_gpu_carry.sh): install the
# carried mlflow wheels it lacks into /tmp/site, put them on PYTHONPATH, set SQUAD_QA_COMMIT (given, or git's HEAD
# with +dirty for a changed tree; the device's copy of .git can be stale, so pass it), then run the command:
#   SQUAD_QA_COMMIT=<commit> scripts/gpu_env.sh scripts/gpu_speed_suite.sh "$OUT"
set -u
python3 - <<'PY'
import glob, importlib.metadata as md, re, subprocess, sys
missing = []
for wheel in sorted(glob.glob(".whl/mlflow/*.whl")):
    name = re.split(r"-\d", wheel.split("/")[-1], 1)[0].replace("_", "-")
    try:
        md.version(name)
    except md.PackageNotFoundError:
        missing.append(wheel)
print("installing", len(missing), "wheels")
if missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", "/tmp/site", *missing], check=False)
PY
export PYTHONPATH=/tmp/site MLFLOW_ALLOW_FILE_STORE=true
[ -n "${SQUAD_QA_COMMIT:-}" ] && COMMIT=$SQUAD_QA_COMMIT || COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
[ -z "${SQUAD_QA_COMMIT:-}" ] && [ -n "$(git status --porcelain 2>/dev/null )" ] && COMMIT="$COMMIT+dirty"
export SQUAD_QA_COMMIT=$COMMIT
"$@"
