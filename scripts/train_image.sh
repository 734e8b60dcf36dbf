#!/usr/bin/env bash
# Reproduce the shipped `image` model from scratch. Data: scripts/prepare_data.py (Debian's wallpapers).
# On a 2-core CPU this is the recipe of the shipped weights (see models/image/README.md for the steps run);
# unchanged on a GPU, where the same steps take minutes (add --steps for more).
set -euo pipefail
DATA=${DATA:-data/wallpapers}
OUT=${OUT:-runs/image}
ginr train --data "$DATA/train" --val-data "$DATA/val" --out "$OUT" --kind image --model tiny-2d --name image \
  --steps "${STEPS:-9000}" --batch 16 --queries 1024 --lr 5e-4 --warmup 200 --scale-min 1 --scale-max 4 \
  --base-prob 0.9 --checkpoint-every 500 --validate-every 500 --log-every 25 "$@"
