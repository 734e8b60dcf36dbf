#!/usr/bin/env bash
# Reproduce the shipped `image` model from scratch, on a GPU (see models/image/README.md): the data of
# scripts/prepare_data.py, packed by `python scripts/pack_data.py --out gpu-pack --max-mib 54`, then 3.4
# minutes of bf16 training on one NVIDIA H200 (scripts/gpu_check.sh runs exactly this). The schedule follows
# the clock (--time-limit), so a slower GPU gets fewer steps of the same schedule. On a CPU, set
# TIME_LIMIT='' and STEPS.
set -euo pipefail
DATA=${DATA:-gpu-pack/images}
OUT=${OUT:-runs/image}
LIMIT=()
[ -n "${TIME_LIMIT-3.4}" ] && LIMIT=(--time-limit "${TIME_LIMIT-3.4}")
ginr train --data "$DATA" --out "$OUT" --kind image --model local-2d --name image \
  --steps "${STEPS:-1000000}" "${LIMIT[@]}" --batch "${BATCH:-64}" --queries 2304 --lr 6e-4 --warmup 300 \
  --scale-min 1 --scale-max 4 --base-prob 0.9 --checkpoint-every 2000 --validate-every 1000 --log-every 50 \
  --workers "${WORKERS:-12}" "$@"
