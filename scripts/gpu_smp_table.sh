#!/usr/bin/env bash
# Issue 3's GPU table on one H100/H200: MiniLM-L6 fine-tuned dense (the teacher), Static Model Pruning at 50% and
# 10% density, each without and with knowledge distillation from that teacher (span KD, and span + hidden-state
# KD), on the three ../shared/data/squad files; then model-only throughput of every saved model
# (scripts/bench_sparsity.py) and the table (scripts/smp_table.py). Runs longer than one device call, so:
#
#   scripts/prepare_gpu_carry.sh --minilm                                  # here, once
#   call 1 (carry .gpu/minilm-1 ...):  mkdir -p /root/stash && cp -r .gpu/minilm-1 /root/stash/
#   call 2 (carry .gpu/minilm-2 .whl/mlflow .data):
#       scripts/gpu_smp_table.sh join /root/stash && \
#       SQUAD_QA_COMMIT=<c> scripts/gpu_env.sh scripts/gpu_smp_table.sh start /root/stash/smp && \
#       scripts/gpu_smp_table.sh wait /root/stash/smp "$OUT" 540
#   call 3, while the machine is warm:  scripts/gpu_smp_table.sh wait /root/stash/smp "$OUT" 580
#
# SMP_TABLE_SET: "seed" (default) runs the table above; "ten" is the 10% study: the dense teacher, then SMP 10% at
# learning rate 1e-3 for 8 epochs with the mask scope "layer" and "global", each without and with span +
# hidden-state KD (weight 10); and, while the KD students train, the side-by-side benchmark on the trained dense
# teacher at fp32 and at bf16 (ours against transformers' QA pipeline, when /tmp/tf457 holds transformers 4.57,
# as gpu_speed_suite.sh leaves it), for whether our answers equal the pipeline's on a trained model.
# SMP_TABLE_EXTRA: settings added to every run (a CPU smoke run: "--max-steps 2 --max-train-examples 40 ...").
# `start` runs the job in its own process session (setsid), which outlives the call; `wait` returns when it is
# done or after SECONDS, copying its log, figures and table to OUT either way.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
action=${1:?usage: gpu_smp_table.sh join STASH | start WORK | wait WORK OUT SECONDS | run WORK}

case "$action" in
join)  # the two halves of the MiniLM checkpoint, carried by two calls, into STASH/minilm
  stash=${2:?STASH}
  [ -d "$stash/minilm-1" ] || { echo "no $stash/minilm-1: the machine was given back since call 1" >&2; exit 2; }
  mkdir -p "$stash/minilm" && cp "$stash"/minilm-1/*.json "$stash/minilm-1/vocab.txt" "$stash/minilm/"
  cat "$stash/minilm-1/model.safetensors.part00" .gpu/minilm-2/model.safetensors.part01 \
    > "$stash/minilm/model.safetensors"
  [ "$(sha256sum "$stash/minilm/model.safetensors" | cut -d' ' -f1)" = "$(cat "$stash/minilm-1/model.safetensors.sha256")" ] \
    || { echo "the joined checkpoint's sha256 differs" >&2; exit 2; }
  echo "joined $stash/minilm"
  ;;
start)
  work=${2:?WORK}
  mkdir -p "$work"
  setsid nohup "$0" run "$work" > "$work/job.log" 2>&1 < /dev/null &
  echo "started: $work/job.log"
  ;;
wait)
  work=${2:?WORK} out=${3:?OUT} seconds=${4:?SECONDS}
  began=$SECONDS
  while [ ! -e "$work/done" ] && (( SECONDS - began < seconds )); do sleep 10; done
  [ -e "$work/done" ] && echo "job done" || echo "job still running after ${seconds}s"
  mkdir -p "$out" && cp "$work"/job.log "$work"/*.json "$work"/*.md "$out/" 2>/dev/null
  tail -5 "$work/job.log"
  ;;
run)
  work=${2:?WORK}
  mkdir -p "$work"
  # shellcheck source=scripts/tree_site.sh
  source scripts/tree_site.sh
  export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 MLFLOW_ALLOW_FILE_STORE=true
  export MLFLOW_TRACKING_URI=file://$work/mlruns
  data=$ROOT/.data/gpu/squad minilm=${MINILM:-/root/stash/minilm}
  train() {  # NAME PRESET EPOCHS [extra settings]: one run, its log beside the others
    local name=$1 preset=$2 epochs=$3
    shift 3
    python3 -m qa_common.cli train bert_qa --preset "$preset" --model-name "$minilm" \
      --train-data "$data/train-v2.0.json,$data/extra-answerable-v1.1.json" --perturbed-negatives 0.5 \
      --eval-data "$data/validation-v2.0.json" --learning-rate 1e-4 --batch-size 32 --max-length 384 \
      --doc-stride 128 --epochs "$epochs" --seed 42 --register false --promote false --export-onnx false \
      --benchmark true --benchmark-examples 100 --system-metrics false --experiment smp_table \
      --run-name "$name" --output-dir "$work/out/$name" --resume false "$@" ${SMP_TABLE_EXTRA:-} \
      > "$work/$name.log" 2>&1
    echo "$name: exit $? at $(date -u +%H:%M:%S)"
  }
  identity() {  # MODEL_DIR: side by side at fp32 and bf16 ("auto"), ours against the pipeline
    if [ ! -d /tmp/tf457 ]; then echo "no /tmp/tf457 (transformers 4.57): identity check skipped"; return; fi
    local precision
    for precision in fp32 auto; do
      python3 -m qa_common.cli benchmark "$1" "$data/validation-v2.0.json" --side-by-side --examples 0 \
        --model-only-batch-sizes 1 --latency-questions 20 --repeats 1 --architecture-questions 0 \
        --precision "$precision" --pipeline-pythonpath /tmp/tf457 --report-dir "$work/identity_$precision" \
        --commit "${SQUAD_QA_COMMIT:-unknown}" > "$work/identity_$precision.log" 2>&1
      echo "identity $precision: exit $? at $(date -u +%H:%M:%S)"
      cp "$work/identity_$precision/speed.md" "$work/identity_$precision.md" 2>/dev/null
    done
  }
  echo "start $(date -u +%H:%M:%S), commit ${SQUAD_QA_COMMIT:-unknown}, set ${SMP_TABLE_SET:-seed}"
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  teacher=$work/out/dense/model
  train dense minilm-l6 5 &
  dense=$!
  if [ "${SMP_TABLE_SET:-seed}" = ten ]; then
    names="dense l10 g10 l10kdh g10kdh"
    ten=(minilm-l6-smp-10 8 --learning-rate 1e-3)
    train l10 "${ten[@]}" &
    train g10 "${ten[@]}" --mask-scope global &
    wait "$dense"
    train l10kdh "${ten[@]}" --teacher "$teacher" --distill-hidden 10 &
    train g10kdh "${ten[@]}" --mask-scope global --teacher "$teacher" --distill-hidden 10 &
    [ -d "$teacher" ] && identity "$teacher"
  else
    names="dense smp50 smp10 smp50kd smp10kd smp50kdh smp10kdh"
    train smp50 minilm-l6-smp-50 6 &
    train smp10 minilm-l6-smp-10 6 &
    wait "$dense"
    train smp50kd minilm-l6-smp-50 6 --teacher "$teacher" &
    train smp10kd minilm-l6-smp-10 6 --teacher "$teacher" &
    train smp50kdh minilm-l6-smp-50 6 --teacher "$teacher" --distill-hidden 10 &
    train smp10kdh minilm-l6-smp-10 6 --teacher "$teacher" --distill-hidden 10 &
  fi
  wait
  models=()
  for name in $names; do
    [ -d "$work/out/$name/model" ] && models+=("$work/out/$name/model")
  done
  if [ ${#models[@]} -gt 0 ] && nvidia-smi > /dev/null 2>&1; then
    python3 scripts/bench_sparsity.py "${models[@]}" --sequence-length 384 --batch-sizes 1,32,256 \
      --out "$work/bench_sparsity.json"
  fi
  python3 scripts/smp_table.py --experiment smp_table --bench "$work/bench_sparsity.json" \
    --out "$work/smp_table.json" > "$work/smp_table.md"
  cat "$work/smp_table.md"
  echo "end $(date -u +%H:%M:%S)"
  touch "$work/done"
  ;;
*)
  echo "unknown action $action" >&2
  exit 2
  ;;
esac
