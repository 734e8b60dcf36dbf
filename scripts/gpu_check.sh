#!/usr/bin/env bash
# Everything this project needs a CUDA machine for, as one prepared run of under 10 minutes:
#   1. the device, and the scan, Mamba, encoder and local-feature tests on it (the Triton scan compiled);
#   2. the shipped models' training in bf16, a fixed number of minutes each (`image`: local-2d on the
#      photos, `volume`: local-3d on the MRI/CT volumes), from the pack of scripts/pack_data.py;
#   3. the encoder benchmark (Mamba against attention up to L=65536), upscaling against the LIIF-style
#      peer on the same GPU, and volume reconstruction.
# Every step is bounded by `timeout` and a failing step does not stop the rest. What comes back is at most
# 8 files in $OUT (or ./gpu-results): log.txt (every step's output, written as it goes), image.tar and
# volume.tar (run folders: model/, log.csv, train.json), results.tar (benchmark JSON and plots).
#
# The lent machine has torch, Triton, pytest, scipy and the rest, not nibabel: carry its wheel in .whl/
# (`python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl nibabel`) and the
# pack in gpu-pack/ (`python scripts/pack_data.py --out gpu-pack --max-mib 54`), both git-ignored:
#   run(command="bash scripts/gpu_check.sh", carry=[".whl", "gpu-pack"], timeout_s=600)
# Rehearsal on the CPU, tiny sizes and seconds instead of minutes: GPU_QUICK=1 bash scripts/gpu_check.sh
# Checks and benchmarks alone, of the shipped models (no training): NO_TRAINING=1 bash scripts/gpu_check.sh
set -uo pipefail
OUT=${OUT:-gpu-results}
WORK=${WORK:-/tmp/gpu-work}
PACK=${PACK:-gpu-pack}
IMAGE_MIN=${IMAGE_MIN:-3.4}
VOLUME_MIN=${VOLUME_MIN:-1.2}
mkdir -p "$OUT" "$WORK"
export PYTHONPATH=. PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:.
fi
LOG="$OUT/log.txt"
if [ -n "${GPU_QUICK:-}" ]; then
  DEVICE=cpu; IMAGE_MIN=0.1; VOLUME_MIN=0.1; WORKERS=2
  IMAGE_SIZE=(--batch 2 --queries 64); VOLUME_SIZE=(--batch 1 --queries 64)
  TESTS=(tests/nn/test_local_features.py)
  ENCODER=(--device cpu --lengths 256 --rounds 1 --repeats 1)
  UPSCALE=(--device cpu --quick); VOLUME=(--device cpu --quick)
else
  DEVICE=cuda; WORKERS=12
  IMAGE_SIZE=(--batch 64 --queries 2304); VOLUME_SIZE=(--batch 8 --queries 4096)
  TESTS=(tests/nn/test_scan_triton.py tests/nn/test_scan.py tests/nn/test_mamba.py tests/nn/test_encoder.py
    tests/nn/test_local_features.py tests/nn/test_ginr.py)
  ENCODER=(--device cuda --lengths 1024 4096 16384 65536 --rounds 1 --repeats 2)
  UPSCALE=(--device cuda --size 1024 --batch 64 --repeats 3); VOLUME=(--device cuda --batch 32 --repeats 2)
fi

step() {  # step NAME SECONDS COMMAND...: run it under a time limit, its output appended to the log
  local name=$1 limit=$2 start=$SECONDS status
  shift 2
  echo "=== $name: $*" >>"$LOG"
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  status=$?
  echo "=== $name: exit $status, $((SECONDS - start)) s" | tee -a "$LOG"
  return $status
}

train() {  # train KIND PRESET MINUTES DATA SIZE...: a bf16 run bounded by MINUTES, then its folder tarred
  local kind=$1 preset=$2 minutes=$3 data=$4
  shift 4
  step "train-$kind" "$(python3 -c "print(int($minutes * 60 + 90))")" python3 -m ginr_cli train \
    --data "$data" --out "$WORK/$kind" --kind "$kind" --model "$preset" --name "$kind" --steps 1000000 \
    --time-limit "$minutes" --scale-min 1 --scale-max 4 --checkpoint-every 2000 --validate-every 1000 \
    --log-every 50 --workers "$WORKERS" --device "$DEVICE" "$@"
  tail -n 4 "$WORK/$kind/log.csv" >>"$LOG" 2>&1
  tar -C "$WORK" -cf "$OUT/$kind.tar" --exclude=checkpoint --exclude='*.png' --exclude=tensorboard "$kind"
}

step device 30 python3 -c "import torch; print(torch.__version__, torch.version.cuda, \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
step tests 100 python3 -m pytest -q "${TESTS[@]}"
# Should a Mamba training step fail here (the Triton scan under bf16 autocast has not run on a GPU before),
# the minutes go to the same architecture with an attention mixer rather than to nothing.
image=local-2d volume=local-3d
if [ -n "${NO_TRAINING:-}" ]; then
  mkdir -p "$WORK/image" "$WORK/volume"
  cp -r models/image "$WORK/image/model"
  cp -r models/volume "$WORK/volume/model"
elif ! step smoke 60 python3 scripts/gpu_smoke.py "$DEVICE"; then
  python3 scripts/gpu_smoke.py "$DEVICE" --attention-configs "$WORK"
  image="$WORK/local-2d-attention.json" volume="$WORK/local-3d-attention.json"
fi
if [ -z "${NO_TRAINING:-}" ]; then
  train image "$image" "$IMAGE_MIN" "$PACK/images" "${IMAGE_SIZE[@]}" --lr 6e-4 --warmup 300 --base-prob 0.9
  train volume "$volume" "$VOLUME_MIN" "$PACK/volumes" "${VOLUME_SIZE[@]}" --lr 5e-4 --warmup 200 \
    --base-prob 0.7
fi
model="$WORK/image/model"
[ -d "$model" ] || model=local-2d  # the architecture's speed, with random weights, if training failed
step encoder 90 python3 scripts/bench_encoder.py "${ENCODER[@]}" --expand 1 --json \
  --plot "$WORK/encoder-gpu.png"
step upscale 80 python3 scripts/bench_upscale.py "${UPSCALE[@]}" --model "$model" --json \
  --plot "$WORK/upscale-gpu.png"
model="$WORK/volume/model"
[ -d "$model" ] || model=local-3d
step volume 60 python3 scripts/bench_volume.py "${VOLUME[@]}" --model "$model" --json \
  --plot "$WORK/volume-gpu.png"
grep -h '^{' "$LOG" >"$WORK/results.jsonl" 2>/dev/null
tar -C "$WORK" -cf "$OUT/results.tar" results.jsonl $(cd "$WORK" && ls ./*.png 2>/dev/null)
echo "done: $(ls "$OUT")"
