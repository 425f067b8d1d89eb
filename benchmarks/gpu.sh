#!/usr/bin/env bash
# The full size of issue 27 as one GPU job, in parts of at most 10 minutes each:
#
#   bash benchmarks/gpu.sh throughput    # the throughput benchmark, MLP engine and CNN path
#   bash benchmarks/gpu.sh grid          # one 10-minute slice of the full-size settings grid
#   bash benchmarks/gpu.sh prune         # one 10-minute slice of the pruning of the 4 conv cells
#   bash benchmarks/gpu.sh all           # all three, slice by slice until each is complete
#   bash benchmarks/gpu.sh --quick all   # the same at a tiny size (seconds; run by the tests)
#
# The grid (P = 8192, 10 seeds, every cell: mlp, cnn, resnet x mnist, fashion_mnist, cifar10,
# cifar10_rgb x parity, classes x GD, B = 128; conv layers flattened and pooled, t* read after
# the transient, the conv nets with XLA's convolution and the lrs of the SPEC §8 rule) is a
# resumable sweep: each `grid` call trains for at most 590 s, then SIGTERM stops it cleanly
# after the chunk in flight (everything up to it checkpointed), and the next call resumes.
# It prints 'grid: complete' or 'grid: N of M cells, run again'. `prune` then retrains the
# CNN and ResNet cells of MNIST parity and CIFAR-10 RGB parity (GD) without S(t*), read at their
# clearest layer (a cell in which nothing inverts is left unpruned, with a line that says so),
# and without a random set of its size (Fig. 2), in slices the same way; it
# prints 'prune: complete' or 'prune: run again'. Results go to runs/gpu/
# (throughput.json, settings-P8192/ with summary.json, table.md and the figures); the same
# commands run on a CPU (slowly), and on several GPUs as SLURM array tasks (--num_tasks).
# Estimate (docs/settings.md): the grid is ~130 PFLOP, about 1 to 2.5 h on one H100; the
# pruning ~33 PFLOP more, 15 to 40 min.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
QUICK=0
if [ "${1:-}" = "--quick" ]; then QUICK=1; shift; fi
PART=${1:-all}
OUT=${GPU_OUT:-runs/gpu}
LIMIT=${GPU_LIMIT:-590}
# The SPEC §8 rule's lrs at the CPU grid's size (docs/settings.md): the CNN's 0.05 (0.2 and 0.1
# fail on CIFAR-10), the ResNet's 0.02 (0.1 and 0.05 fail on MNIST and Fashion-MNIST). Run
# experiments/learning_rate.py at the full size first where the device time allows.
# At 0.02 the ResNet's D turns at epochs 465-1527 (CPU size, 2000 epochs): GRID_EPOCHS=2000 trains
# every cell that long (a new workdir, GPU_OUT=, since the grid's settings change).
CNN_LR=${CNN_LR:-0.05}
RESNET_LR=${RESNET_LR:-0.02}
mkdir -p "$OUT"

if [ $QUICK = 1 ]; then
  OUT="$OUT/quick"
  mkdir -p "$OUT"
  TP_FLAGS="--seeds=1 --epochs=2 --repeats=1 --train_size=64 --memory_epochs=0 --cnn_sizes=64:2-4,96:2-4 --cnn_impls=xla,im2col --cnn_precisions=float32"
  GRID_FLAGS="--models=mlp,cnn --datasets=mnist --tasks=parity --batches=0 --train_size=64 --seeds=2 --epochs=6 --chunk_epochs=3 --cnn_channels=2,3"
  PRUNE_CELLS=cnn-mnist-parity-GD
else
  TP_FLAGS="--memory_epochs=0 --cnn_impls=xla,im2col,shifted"
  GRID_FLAGS="--models=mlp,cnn,resnet --train_size=8192 --seeds=10 --epochs=${GRID_EPOCHS:-1000}"
  PRUNE_CELLS=cnn-mnist-parity-GD,cnn-cifar10_rgb-parity-GD,resnet-mnist-parity-GD,resnet-cifar10_rgb-parity-GD
fi
GRID_FLAGS="$GRID_FLAGS --cnn_conv_impl=xla --resnet_conv_impl=xla --model_lrs=cnn:$CNN_LR,resnet:$RESNET_LR --pooled_too --t_star_rule=after_transient --nostop_after_inversion --test_every=0 --workdir=$OUT/settings"
if [ -n "${GPU_DATA_DIR:-}" ]; then  # the data's own directory rather than the cache
  GRID_FLAGS="$GRID_FLAGS --data_dir=$GPU_DATA_DIR"
  TP_FLAGS="$TP_FLAGS --data_dir=$GPU_DATA_DIR"
fi

throughput() {
  timeout -s TERM "$LIMIT" $PY benchmarks/throughput.py $TP_FLAGS --output="$OUT/throughput.json"
  echo "throughput: exit $? (results in $OUT/throughput.json)"
}

grid() {  # one slice; 0 when the sweep is complete
  timeout -s TERM "$LIMIT" $PY experiments/settings.py $GRID_FLAGS
  local rc=$?
  local done
  done=$($PY -c "import json; s=json.load(open('$OUT/settings/summary.json')); print(s['points_complete'], s['points_total'])" 2>/dev/null)
  if [ $rc = 0 ]; then echo "grid: complete ($done)"; return 0; fi
  if [ $rc = 124 ]; then echo "grid: ${done:-?} cells, run again"; return 1; fi
  echo "grid: failed (exit $rc)"; return 2
}

prune() {  # one slice of the pruning (after the grid: it prunes complete cells); 0 when done
  timeout -s TERM "$LIMIT" $PY experiments/settings.py $GRID_FLAGS --prune \
    --prune_cells=$PRUNE_CELLS --noprune_around
  local rc=$?
  if [ $rc = 0 ]; then echo "prune: complete"; return 0; fi
  if [ $rc = 124 ]; then echo "prune: run again"; return 1; fi
  echo "prune: failed (exit $rc)"; return 2
}

case "$PART" in
  throughput) throughput ;;
  grid) grid ;;
  prune) prune ;;
  all)
    throughput
    while true; do grid; rc=$?; [ $rc = 1 ] || break; done
    [ $rc = 0 ] || exit $rc
    while true; do prune; rc=$?; [ $rc = 1 ] || exit $rc; done ;;
  *) echo "usage: bash benchmarks/gpu.sh [--quick] throughput|grid|prune|all"; exit 2 ;;
esac
