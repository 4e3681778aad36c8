#!/usr/bin/env bash
# Issue 10's GPU measurements in one call, within SUITE_SECONDS (default 540) on one H100/H200:
#
#   scripts/prepare_gpu_carry.sh                          # here, once: tokenizer, validation-v2.0.json, wheels
#   SQUAD_QA_COMMIT=$(git rev-parse --short=12 HEAD) scripts/gpu_env.sh scripts/gpu_speed_suite.sh "$OUT"  # there; carry .data .whl
#
# Steps, most important first; each gets a time limit out of what is left, and a step cut short keeps what it
# had written:
#   1. side by side (squad-qa benchmark --side-by-side): ours (bf16, token budget, spans on the GPU, CUDA graphs
#      for small batches) vs the plain model at fixed padding vs transformers 4.57's QA pipeline (subprocess),
#      with a row for lstm_qa, t5_qa (t5-base size) and mamba_qa (130M size), random weights -> speed.json/.md
#   2. training features/s at 384 without compile (Trainer baseline at batch 32, plain loop, bert_qa.fused's packed
#      module at batch 32 and 128) -> train.json; then on the real windows of train-v2.0.json (max length 384,
#      padded per batch as the job does), the Trainer baseline against packed training (PackedSpanTrainer, what
#      bert_qa's packed_training trains, under the Trainer as the job runs it, and in a plain loop), eager and
#      with its layers compiled, and the padded module compiled -> train_real.json
#   3. the inference option sweep without compile (packed eager, transformers' module, graphs, chunked predict, a
#      token budget) -> sweep.jsonl
#   4. torch.compile (mode default, the packed module's layers): inference, exact and approximate GELU, with CUDA
#      graphs -> sweep.jsonl, then training with compile -> train_compile.json
#   5. with SUITE_PROFILE=1 only, the kernels of a batch-256 forward by CUDA time (scripts/profile_encoder.py) ->
#      profile.json, in place of train_real.json (8 files come back)
#   6. SUMMARY.md: the headline figures against the issue's targets.
# SUITE_SKIP="train train-compile" skips the steps named (e.g. figures kept from an earlier run of the same code);
# SIDE_EXTRA="--compile true --approximate-gelu true" adds options to our path in the side-by-side step.
# Everything printed goes to suite.log as well. At most 8 files come back from $OUT: these are 8.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: scripts/gpu_speed_suite.sh OUT_DIR}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
exec > >(tee -a "$OUT/suite.log") 2>&1
BUDGET=${SUITE_SECONDS:-540}
PY=${PYTHON:-python3}
ROOT=$PWD
TOKENIZER=${TOKENIZER:-$ROOT/.data/gpu/bert-uncased-tokenizer}
DATA=${DATA:-$ROOT/.data/gpu/validation-v2.0.json}
TRAIN_DATA=${TRAIN_DATA:-$ROOT/.data/gpu/squad/train-v2.0.json}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=true NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
# The MLflow store stays out of $OUT (few files come back); the figures are in $OUT either way.
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-file:///tmp/squad-qa-mlruns}
export SQUAD_QA_COMMIT=${SQUAD_QA_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}

for needed in "$TOKENIZER/vocab.txt" "$DATA"; do
  [ -e "$needed" ] || { echo "missing $needed: run scripts/prepare_gpu_carry.sh here and carry .data" >&2; exit 2; }
done

# shellcheck source=scripts/tree_site.sh
source scripts/tree_site.sh

"$PY" -c "import mlflow" 2>/dev/null || {
  echo "mlflow does not import: run the suite through scripts/gpu_env.sh (it installs the carried .whl/mlflow)" >&2
  exit 2
}

PIPELINE=()
if compgen -G ".whl/tf457/*.whl" > /dev/null; then
  rm -rf /tmp/tf457
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/tf457 .whl/tf457/*.whl && PIPELINE=(--pipeline-pythonpath /tmp/tf457)
fi

START=$SECONDS
left() { echo $((BUDGET - (SECONDS - START))); }
step() {  # step NAME LIMIT_SECONDS COMMAND...: run with the smaller of LIMIT and the time left
  local name=$1 limit=$2 remaining
  shift 2
  remaining=$(left)
  if [[ " ${SUITE_SKIP:-} " == *" $name "* ]]; then echo "=== $name: skipped (SUITE_SKIP)"; return; fi
  if (( remaining < 25 )); then echo "=== $name: skipped, ${remaining}s left"; return; fi
  (( limit > remaining )) && limit=$remaining
  echo "=== $name: limit ${limit}s, ${remaining}s left, $(date -u +%H:%M:%S)"
  local began=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$@"
  echo "=== $name: exit $? after $((SECONDS - began))s"
}

"$PY" - <<'PY'
import tokenizers, torch, transformers
print(f"GPU {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}, torch {torch.__version__}, "
      f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")
from qa_common.adapter import available_adapters
print("architectures:", ", ".join(sorted(available_adapters())))
PY

BERT="bert_qa:random-bert-base:{\"tokenizer_name\": \"$TOKENIZER\"}"
LSTM='lstm_qa:bidaf:{"embeddings": "random", "pretrained_words": 0, "freeze_embeddings": false}'
T5="t5_qa:tiny:{\"tokenizer_name\": \"$TOKENIZER\", \"d_model\": 768, \"d_ff\": 3072, \"d_kv\": 64, \"num_layers\": 12, \"num_heads\": 12, \"max_length\": 384, \"doc_stride\": 128, \"max_question_length\": 64, \"max_answer_tokens\": 16}"
MAMBA='mamba_qa:tiny:{"hidden_size": 768, "num_hidden_layers": 24, "state_size": 16, "vocab_size": 50280, "max_length": 512, "doc_stride": 128, "max_question_length": 64, "max_answer_tokens": 16}'
# End to end takes half a second on an H200 and varied from run to run there: best of 5.
SIDE=(--examples 0 --model-only-batch-sizes 1,32,256 --latency-questions 100 --architecture-questions 128 --repeats 5)
TRAIN=(scripts/bench_train.py --overrides "{\"tokenizer_name\": \"$TOKENIZER\"}" --sequence-length 384
       --batch-size 32 --steps 30 --warmup 5)
SWEEP=(scripts/bench_inference.py --model "$BERT" --data "$DATA" --out "$OUT/sweep.jsonl")
PROFILE=(scripts/profile_encoder.py --tokenizer "$TOKENIZER" --out "$OUT/profile.json")
if [ -n "${SUITE_SMOKE:-}" ]; then  # a CPU check of the whole suite with toy sizes (minutes, not figures)
  BERT="bert_qa:tiny:{\"tokenizer_name\": \"$TOKENIZER\"}"
  LSTM='lstm_qa:tiny'
  T5="t5_qa:tiny:{\"tokenizer_name\": \"$TOKENIZER\"}"
  MAMBA='mamba_qa:tiny'
  SIDE=(--examples 40 --model-only-batch-sizes 1,4 --sequence-length 128 --latency-questions 5 --repeats 1
        --model-only-seconds 0.2 --architecture-questions 8)
  TRAIN_DATA=$ROOT/data/sample/train-v2.0-sample.json
  TRAIN=(scripts/bench_train.py --preset tiny --overrides "{\"tokenizer_name\": \"$TOKENIZER\"}"
         --sequence-length 64 --batch-size 4 --steps 2 --warmup 1)
  SWEEP=(scripts/bench_inference.py --model "$BERT" --data "$DATA" --out "$OUT/sweep.jsonl" --examples 40
         --batch-sizes 1,4 --sequence-length 128 --latency-questions 5 --model-only-seconds 0.2)
  PROFILE=(scripts/profile_encoder.py --preset tiny --tokenizer "$TOKENIZER" --batch-size 2 --sequence-length 32
           --steps 1 --out "$OUT/profile.json")
fi

step side-by-side 200 "$PY" -m qa_common.cli benchmark "$BERT" "$DATA" --side-by-side "${SIDE[@]}" \
  --batch-size 64 --max-batch-tokens 32768 --cuda-graphs true ${SIDE_EXTRA:-} "${PIPELINE[@]}" \
  --architecture "$LSTM" --architecture "$T5" --architecture "$MAMBA" --report-dir "$OUT" --commit "$SQUAD_QA_COMMIT"
step train 90 "$PY" "${TRAIN[@]}" --variants "trainer,loop+fused+nomask,loop+packed+fused,loop+packed+fused+b128" \
  --out "$OUT/train.json"
if [ -z "${SUITE_PROFILE:-}" ]; then
  step train-real 200 "$PY" "${TRAIN[@]}" --data "$TRAIN_DATA" --out "$OUT/train_real.json" \
    --variants "trainer,trainer+packedtrain+fused,trainer+packedtrain+fused+compile+b128,loop+packedtrain+fused+compile+b128,loop+fused+compile+b128"
fi
step sweep-eager 90 "$PY" "${SWEEP[@]}" --configs "eager,unpacked,graphs,chunk-256,budget-65536"
# max-autotune added 0.5% for 64 s of autotuning on the H200 (3f88251's README): default mode only.
step sweep-compile 120 "$PY" "${SWEEP[@]}" --configs "compile,compile-approx-gelu,compile-graphs"
step train-compile 150 "$PY" "${TRAIN[@]}" \
  --variants "loop+fused+compile+nomask,loop+packed+fused+compile,loop+packed+fused+compile+b128,loop+pure+packed+fused+compile+b128" \
  --out "$OUT/train_compile.json"
# Where batch 256 x 384 spends its GPU time (kernels by CUDA time), for what the next change should target.
[ -n "${SUITE_PROFILE:-}" ] && step profile 60 "$PY" "${PROFILE[@]}"

"$PY" scripts/speed_summary.py "$OUT" > "$OUT/SUMMARY.md" && cat "$OUT/SUMMARY.md"
echo "suite done in $((SECONDS - START))s"
