#!/usr/bin/env bash
# The seed's journey through the CLI, as a script: train, look, pick, save, combine, walk.
#
#   bash examples/seed_journey.sh photos/                       # your folder
#   bash examples/seed_journey.sh                               # the built-in synthetic faces
#   POS=16,37,83 NEG=91,92,89 bash examples/seed_journey.sh photos/
#
# Picking is done by eye: run it once, open the grid it prints, note seeds that show the attribute
# (POS) and seeds that do not (NEG), then run it again with them; the trained run is reused.
# TRAIN_ARGS overrides the training flags (e.g. TRAIN_ARGS="-s 64 --epochs 100").
set -euo pipefail

LATENTCTL=${LATENTCTL:-latentctl}
PYTHON=${PYTHON:-python3}
TRAIN_ARGS=${TRAIN_ARGS:--s 32 --arch lite --epochs 40}
POS=${POS:-16,37,83}
NEG=${NEG:-91,92,89}
DIR=${1:-}

if [ -z "$DIR" ]; then
    # 2,000 cartoon faces with known attributes, made here (nothing is downloaded)
    DIR=$("$PYTHON" -c 'import sys; from pathlib import Path; from latentctl import synthetic
print(synthetic.make_dataset(Path(sys.argv[1]), 2000, 32))' "${LATENTCTL_HOME:-$HOME/.latentctl}/example-faces")
fi

# Train once: a run named after this script, reused on the next call.
if ! $LATENTCTL runs use journey >/dev/null 2>&1; then
    # shellcheck disable=SC2086  # TRAIN_ARGS is a list of flags
    $LATENTCTL train "$DIR" $TRAIN_ARGS --name journey
fi

# 100 samples on a grid labelled with seeds: this is where you look and pick.
grid=$($LATENTCTL sample -n 100 --no-pngs --json | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["grid"])')
echo "look at $grid and pick seeds: POS=... NEG=... bash $0 $*"

# Keep the picks; a direction from them; the seed's arithmetic; a walk between two samples.
$LATENTCTL sample --seeds "$POS" --save picked-pos --force >/dev/null
$LATENTCTL sample --seeds "$NEG" --save picked-neg --force >/dev/null
$LATENTCTL attr-vector --pos picked-pos --neg picked-neg --save picked-dir --force
$LATENTCTL apply seeds:0-7 --add picked-dir --scales -2,-1,0,1,2
$LATENTCTL apply picked-neg --mean --add picked-dir     # mean(neg) + (mean(pos) - mean(neg))
$LATENTCTL interp "seeds:${POS%%,*}" "seeds:${NEG%%,*}" --frames 8 --gif
