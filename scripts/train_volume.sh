#!/usr/bin/env bash
# Reproduce the shipped `volume` model from scratch, on a GPU (see models/volume/README.md): the volumes of
# scripts/prepare_data.py, packed by `python scripts/pack_data.py --out gpu-pack --max-mib 54`, then 1.2
# minutes of bf16 training on one NVIDIA H200 (scripts/gpu_check.sh runs exactly this). The schedule follows
# the clock (--time-limit). On a CPU, set TIME_LIMIT='' and STEPS.
set -euo pipefail
DATA=${DATA:-gpu-pack/volumes}
OUT=${OUT:-runs/volume}
LIMIT=()
[ -n "${TIME_LIMIT-1.2}" ] && LIMIT=(--time-limit "${TIME_LIMIT-1.2}")
ginr train --data "$DATA" --out "$OUT" --kind volume --model local-3d --name volume \
  --steps "${STEPS:-1000000}" "${LIMIT[@]}" --batch "${BATCH:-8}" --queries 4096 --lr 5e-4 --warmup 200 \
  --scale-min 1 --scale-max 4 --base-prob 0.7 --checkpoint-every 2000 --validate-every 1000 --log-every 50 \
  --workers "${WORKERS:-12}" "$@"
