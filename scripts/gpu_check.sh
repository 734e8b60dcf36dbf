#!/usr/bin/env bash
# Every check this project needs a CUDA machine for, as one short run (no GPU has been lent to it yet):
#   1. the scan, Mamba and encoder tests on the GPU (the Triton scan compiled, not interpreted);
#   2. the encoder benchmark on CUDA, Mamba against attention up to L=65536 (attention's out-of-memory
#      lengths are reported as skipped), one round;
#   3. `ginr upscale` x4 of the example photo and 30 `ginr train` steps (bf16 autocast), end to end.
# Each step's output and exit status go to $OUT (or ./gpu-results); a failing step does not stop the rest.
#
# The lent machine has torch, Triton, typer, rich, pillow, tifffile and safetensors, not nibabel: carry it
# as a wheel in .whl/ (ignored by git: `echo /.whl/ >> .git/info/exclude`), fetched here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl nibabel
# then run `bash scripts/gpu_check.sh` there, carrying .whl. About 5 minutes on an H200.
set -uo pipefail
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH=.
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:.
fi

step() {  # step NAME COMMAND...: run it, its output into $OUT/NAME.txt, its time and status on stdout
  local name=$1 start=$SECONDS status
  shift
  "$@" >"$OUT/$name.txt" 2>&1
  status=$?
  echo "$name: exit $status, $((SECONDS - start)) s"
  tail -n 3 "$OUT/$name.txt"
}

step device python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name(), torch.version.cuda)"
step tests python3 -m pytest -q tests/nn/test_scan_triton.py tests/nn/test_scan.py tests/nn/test_mamba.py \
  tests/nn/test_encoder.py
step encoder python3 scripts/bench_encoder.py --device cuda --lengths 1024 4096 16384 65536 --expand 1 2 \
  --rounds 1 --json --plot "$OUT/encoder-gpu.png"
step upscale python3 -m ginr_cli upscale examples/images/cups.jpg "$OUT/upscaled" --scale 4 --device cuda
step train python3 -m ginr_cli train --data examples/images --out "$OUT/run" --kind image --model tiny-2d \
  --steps 30 --batch 16 --device cuda
