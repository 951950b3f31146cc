#!/usr/bin/env bash
# The GPU runs behind the shipped weights (gpu/README.md), one phase per device call:
#   data       copy the carried .gpu_data/lol (our485 low + eval15) to $LOL
#   sweep      add the carried .gpu_high (our485 high); train DecomNet for each reflectance-similarity
#              weight in $WEIGHTS concurrently; pick the first non-grey one; start Restoration_net
#   restore    continue Restoration_net (resumes from $RUN/restoration/state.pt)
#   stage      copy a carried pack folder ($PACK: lol/ and init/ parts of a data set too large for
#              one call) into $STAGE
#   finetune   Restoration_net on $STAGE/lol with the carried .gpu_decom/decom.npz, a new run
#              started from the weights in $STAGE/init (resumes like restore on later calls)
# Each phase copies weights (split below 16 MB) and loss logs to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
PHASE=$1
LOL=${LOL:-/root/lol}
RUN=${RUN:-/root/kind_run}
STAGE=${STAGE:-/root/stage}
OUT=${OUT:-/tmp/out}
WEIGHTS=${WEIGHTS:-"0.01 0.1 0.3 1.0"}
DECOM_STEPS=${DECOM_STEPS:-}            # default: 2000 epochs of N // 10 steps
MINUTES=${MINUTES:-5}                   # this call's share of restoration training
BUDGET=${BUDGET:-16}                    # restoration's total training minutes, over all calls
PY=${PY:-python3}
T="$PY gpu/train_torch.py"
mkdir -p "$LOL" "$RUN" "$OUT"

collect() {   # at most 8 files come back: one tar of the small things, the weights in parts
  (cd "$RUN" && tar cf "$OUT/run.tar" --exclude='*.pt' --exclude='restoration.npz' --exclude='*.tmp*' .)
  if [ -f "$RUN/restoration.npz" ]; then $T split "$RUN/restoration.npz" "$OUT/restoration"; fi
}

case $PHASE in
  data)
    cp -r .gpu_data/lol/. "$LOL/"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    $PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"
    ;;
  sweep)
    cp -r .gpu_high/. "$LOL/"
    pids=()
    for w in $WEIGHTS; do
      $T decomposition --data_dir "$LOL" --run_dir "$RUN/decom_$w" --out "$RUN/decom_$w.npz" \
         --equal_r_weight "$w" --minutes "${DECOM_MINUTES:-4}" ${DECOM_STEPS:+--steps $DECOM_STEPS} \
         > "$RUN/decom_$w.log" 2>&1 &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    tail -n 2 "$RUN"/decom_*.log
    candidates=(); for w in $WEIGHTS; do candidates+=("$RUN/decom_$w.npz"); done
    $T pick --data_dir "$LOL" --out "$RUN/decom.npz" "${candidates[@]}"
    $T restoration --data_dir "$LOL" --decom_weights "$RUN/decom.npz" --run_dir "$RUN/restoration" \
       --out "$RUN/restoration.npz" --bf16 --budget_minutes "$BUDGET" --minutes "$MINUTES" \
       ${RESTORE_ARGS:-}
    collect
    ;;
  restore)
    $T restoration --data_dir "$LOL" --decom_weights "$RUN/decom.npz" --run_dir "$RUN/restoration" \
       --out "$RUN/restoration.npz" --bf16 --budget_minutes "$BUDGET" --minutes "$MINUTES" \
       ${RESTORE_ARGS:-}
    collect
    ;;
  stage)
    mkdir -p "$STAGE"; cp -r "$PACK"/. "$STAGE/"
    find "$STAGE/lol" -type f | sed 's#/[^/]*$##' | sort | uniq -c
    ;;
  finetune)
    if [ ! -f "$RUN/decom.npz" ]; then cp .gpu_decom/decom.npz "$RUN/decom.npz"; fi
    $T restoration --data_dir "$STAGE/lol" --decom_weights "$RUN/decom.npz" --run_dir "$RUN/restoration" \
       --out "$RUN/restoration.npz" --bf16 --minutes "$MINUTES" --init_weights "$STAGE"/init/*.npz \
       ${RESTORE_ARGS:-}
    collect
    ;;
esac
