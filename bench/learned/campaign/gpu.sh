#!/bin/bash
# One GPU lease of the learned codecs' training campaign (README, "On a GPU machine").
#
#   bash bench/learned/campaign/gpu.sh RECIPE MINUTES OUTDIR [PACK]
#
# Trains ggm and gaussian-roi side by side, one process each (a batch of 4 crops of 256² keeps
# an H200 waiting on the host's kernel launches, so a second process fills its idle time),
# for MINUTES from the committed campaign snapshots (or from STATE, default /tmp/state, when
# a previous call on the same machine left checkpoints there), then writes both campaign
# snapshots and the logs into OUTDIR: 6 files, inside the device tool's 8. Each process first tries
# `--compile`; one that fails restarts without it, from its checkpoint, for the time left.
# Budgets stay equal where it matters: the recipe fixes every codec's total steps.
# A pack is a small sample of the training pictures, and a lease can fit it (model card,
# "Release-3 campaign progress"): HOLDOUT of its crops are never trained on, and every
# EVAL_EVERY steps the loss on them is logged beside the loss on crops trained on (also kept
# in the snapshot's card, budget.sessions[].evals); a codec stops when the held-out loss has
# not improved for PATIENCE evaluations.
# Environment: PYTHON (python3), DEVICE (cuda; cpu only to try the script), STATE,
# HOLDOUT (64; 0 turns the watch off), EVAL_EVERY (500), PATIENCE (4).
set -u
if [ $# -lt 3 ]; then
    echo "usage: bash $0 RECIPE MINUTES OUTDIR [PACK]" >&2
    exit 2
fi
recipe=$1 minutes=$2 out=$3 pack=${4:-gpu/pack.npz}
py=${PYTHON:-python3} device=${DEVICE:-cuda} state=${STATE:-/tmp/state}
holdout=${HOLDOUT:-64} eval_every=${EVAL_EVERY:-500} patience=${PATIENCE:-4}
if [ "$holdout" = 0 ]; then eval_every=0 patience=0; fi  # nothing held out: nothing to watch
if [ ! -f "$pack" ]; then
    echo "no training pack at $pack: make one with bench train --make-pack $pack --pack-mib 30" \
        "--seed N (a seed no lease has used; README, \"On a GPU machine\")" >&2
    exit 2
fi
mkdir -p "$out" "$state"
start=$(date +%s)

bench_train() {  # bench train on this lease's recipe, pack and device
    "$py" -m bench train --recipe "$recipe" --pack "$pack" --device "$device" "$@"
}

train() {  # entropy: --compile first, eager for the rest of the budget if that fails
    local e=$1 log=$out/$1.log
    bench_train --entropy "$e" --out "$state/$e" --no-progress --time-budget "$minutes" \
        --holdout "$holdout" --eval-every "$eval_every" --patience "$patience" \
        --compile >"$log" 2>&1
    local rc=$? left
    [ $rc -eq 0 ] && return 0
    left=$("$py" -c "print(round(max(0.0, $minutes - ($(date +%s) - $start) / 60 - 0.5), 2))")
    echo "== --compile failed (rc $rc); eager for $left more minutes" >>"$log"
    bench_train --entropy "$e" --out "$state/$e" --no-progress --time-budget "$left" \
        --holdout "$holdout" --eval-every "$eval_every" --patience "$patience" >>"$log" 2>&1
}

train ggm &
train gaussian &
wait
for e in ggm gaussian; do grep -v -e UserWarning -e 'warnings.warn(' "$out/$e.log" | tail -n 8; done
bench_train --entropy both --out "$state" --snapshot "$out" 2>&1 | tail -n 2
echo "gpu.sh: $(( $(date +%s) - start )) s in all"
