#!/usr/bin/env bash
# The codec models' rate-distortion tables of their cards and the README, side by side with the classic
# codecs, written to scripts/results/codec-*.json and .png: real MRI (MNI152 1 mm from nilearn's wheel,
# ch2better 0.5 mm from mricron-data, ROBEX's single-subject T1, the bundled Colin27 2 mm) and photographs
# (Set14 and BSD100 HR at full size). Needs scripts/prepare_data.py's data and ../shared.
# QUALITIES (default 1,2,3,4,5) and REFINE (default: encode's) are passed on.
set -euo pipefail
R=scripts/results
Q=${QUALITIES:-1,2,3,4,5}
REFINE_ARG=()
[ -n "${REFINE-}" ] && REFINE_ARG=(--refine "$REFINE")
for v in examples/volumes/colin27_2mm.nii.gz data/volumes/eval/mni152_t1_1mm.nii.gz \
         data/volumes/subject/robex_t1.nii.gz /usr/share/mricron/templates/ch2better.nii.gz; do
  name=$(basename "$v" .nii.gz)
  ginr eval "$v" --codec --qualities "$Q" "${REFINE_ARG[@]}" --plot "$R/codec-$name.png" --json > "$R/codec-$name.json"
done
for s in Set14 BSD100; do
  ginr eval "../shared/data/sr-benchmarks/$s/image_SRF_2" --codec --qualities "$Q" "${REFINE_ARG[@]}" \
    --plot "$R/codec-$s.png" --json > "$R/codec-$s.json"
done
