#!/usr/bin/env bash
# Reproduce the shipped `volume` model from scratch. Data: scripts/prepare_data.py (Debian's mricron-data
# templates; the MNI152 volume is held out for `ginr eval`). See models/volume/README.md for the run.
set -euo pipefail
DATA=${DATA:-data/volumes}
OUT=${OUT:-runs/volume}
ginr train --data "$DATA/train" --out "$OUT" --kind volume --model tiny-3d --name volume \
  --steps "${STEPS:-2500}" --batch 4 --queries 2048 --lr 5e-4 --warmup 100 --scale-min 1 --scale-max 4 \
  --base-prob 0.7 --checkpoint-every 100 --validate-every 250 --log-every 25 "$@"
