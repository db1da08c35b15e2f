#!/usr/bin/env bash
# Train the built-in models on a lent GPU in one fixed-time call: the three built-in models (sd1-tiny,
# sd2-tiny, sdxl-tiny, each with its recipe's text encoder) in parallel on the one GPU, each for BUDGET
# seconds (the UNet step count follows from the speed measured after 100 steps), then the benchmark
# for each. Leaves in $OUT: <model>-L<layers>.safetensors (one-file bundles of the EMA weights,
# rewritten every 500 steps, so a time-out still returns weights), train.log and eval.md.
# Unpack a bundle here with daam_store.training.bundle_to_folder(bundle, folder).
#
# Usage: OUT=/some/dir BUDGET=360 bash benchmarks/gpu_train_builtin.sh
# Dry run on a CPU: OUT=/tmp/o BUDGET=40 DEVICE=cpu TRAIN_ARGS="--batch-size 2 --vae-steps 2" \
#                   EVAL_ARGS="--n 2 --steps 2 --influence 1" bash benchmarks/gpu_train_builtin.sh
set -u
: "${OUT:?set OUT to the output folder}"
BUDGET=${BUDGET:-360}
DEVICE=${DEVICE:-cuda}
TRAIN_ARGS=${TRAIN_ARGS:-}
EVAL_ARGS=${EVAL_ARGS:---n 96}
WORK=${WORK:-/tmp/gpu-train}
PYTHON=${PYTHON:-python3}
VARIANTS=${VARIANTS:-"sd1-tiny:0 sd2-tiny:0 sdxl-tiny:1"}  # model:text-layers (SDXL reads the penultimate layer)
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2 TRANSFORMERS_VERBOSITY=error
mkdir -p "$OUT" "$WORK"
LOG=$OUT/train.log
echo "start $(date -u +%FT%TZ) budget ${BUDGET}s device $DEVICE" >> "$LOG"
if [ "$DEVICE" = cuda ]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >> "$LOG" 2>&1; fi

run_variant() {
    local name=$1 layers=$2 tag=$1-L$2
    # shellcheck disable=SC2086
    "$PYTHON" -m daam_store.commands.train train-builtin "$name" --device "$DEVICE" --text-layers "$layers" \
        --out "$WORK/$tag" --time-budget "$BUDGET" --snapshot "$OUT/$tag.safetensors" --snapshot-every 500 \
        --checkpoint-every 1000000 --log-file "$LOG" --quiet $TRAIN_ARGS > "$WORK/$tag.train.out" 2>&1
    local code=$?
    echo "[$tag] training exit $code" >> "$LOG"
    if [ $code -ne 0 ]; then tail -20 "$WORK/$tag.train.out" >> "$LOG"; return; fi
    # shellcheck disable=SC2086
    "$PYTHON" -m daam_store.commands.evaluate eval --model "$WORK/$tag/pipeline" --device "$DEVICE" $EVAL_ARGS \
        > "$WORK/$tag.eval.md" 2> "$WORK/$tag.eval.err"
    echo "[$tag] eval exit $? at $(date -u +%T)" >> "$LOG"
}

for variant in $VARIANTS; do
    run_variant "${variant%:*}" "${variant#*:}" &
done
wait
for variant in $VARIANTS; do
    tag=${variant%:*}-L${variant#*:}
    echo "## $tag"
    cat "$WORK/$tag.eval.md" 2>/dev/null
    tail -5 "$WORK/$tag.eval.err" 2>/dev/null
    echo
done > "$OUT/eval.md"
echo "end $(date -u +%FT%TZ)" >> "$LOG"
