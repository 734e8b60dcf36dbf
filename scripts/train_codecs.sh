#!/usr/bin/env bash
# Train the codec models on this project's 2-core CPU (the shipped ones are their untrained initialisation,
# which these runs did not beat: see models/volume-codec/README.md and models/image-codec/README.md),
# from scripts/prepare_data.py's data: each a run of TIME_LIMIT minutes
# whose schedule follows the clock. `codec-3d` trains on data/volumes/codec-train (the training volumes
# without ch2better, which the codec's evaluation keeps), `codec-2d` on data/photos/train.
# WHICH=volume or WHICH=image trains one of them.
set -euo pipefail
WHICH=${WHICH:-both}
if [ "$WHICH" != image ]; then
  ginr train --data data/volumes/codec-train --out "${OUT:-runs}/volume-codec" --kind volume \
    --model codec-3d --name volume-codec --steps 100000 --time-limit "${TIME_LIMIT:-32}" --batch 8 \
    --queries 4096 --lr 3e-4 --warmup 100 --checkpoint-every 250 --validate-every 250 --log-every 50 "$@"
fi
if [ "$WHICH" != volume ]; then
  ginr train --data data/photos/train --out "${OUT:-runs}/image-codec" --kind image \
    --model codec-2d --name image-codec --steps 100000 --time-limit "${TIME_LIMIT:-18}" --batch 16 \
    --queries 4096 --lr 3e-4 --warmup 100 --checkpoint-every 250 --validate-every 250 --log-every 50 "$@"
fi
