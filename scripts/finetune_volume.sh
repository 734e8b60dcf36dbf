#!/usr/bin/env bash
# The second stage of the shipped `volume` model (see models/volume/README.md): the model of
# scripts/train_volume.sh fine-tuned on a 2-core CPU for 62 minutes on data/volumes/train as
# scripts/prepare_data.py lays it out (the four volumes of the first stage and two single-subject EPI
# volumes). The schedule follows the clock (--time-limit); a faster machine takes more steps in it.
set -euo pipefail
INIT=${INIT:-runs/volume/model}
DATA=${DATA:-data/volumes/train}
OUT=${OUT:-runs/volume-ft}
ginr train --init-from "$INIT" --data "$DATA" --out "$OUT" --kind volume \
  --steps 100000 --time-limit "${TIME_LIMIT:-62}" --batch 8 --queries 4096 --lr 3e-4 --warmup 30 \
  --scale-min 1 --scale-max 4 --base-prob 0.7 --checkpoint-every 100 --validate-every 200 --log-every 25 \
  --workers 0 "$@"
