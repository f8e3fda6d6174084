#!/usr/bin/env bash
# One GPU session does the whole cross-validated recipe and packs what it made into $OUT.
#
#   bash benchmarks/train_recipe_gpu.sh [RECIPE]        (from the repository root)
#
# Needs the recipe's data pack (python -m engine.training.pack --recipe ../shared/data
# work_data/pack, about 50 MB) in work_data/pack or as one archive work_data/pack.tar (2000
# small files travel worse than one tar), and python3 with torch, numpy, scipy, Pillow,
# safetensors and pydicom (`python -m engine` imports engine.io for `predict`'s parser).
# SITE_TGZ=archive.tar.xz unpacks extra packages (pydicom with its dist-info, say) into
# python3's site-packages first. Writes into $OUT (or ./out): gpu_steps.json (s/step of the
# U-Net at 256/512, fp32 and bf16; STEP_BENCH=0 skips it), train_log.txt, and
# result.tgz.part-* (split at 15 MiB: cat them | tar xz) holding cv_report.{md,json},
# timings.json, recipe.json, export/ (fp16 distilled model + ensemble, with cards), every
# run's card, metrics.csv and log, and the pseudo-label statistics.
# Measured on one H200 (docs/TRAINING.md): 370 s with teacher/student budgets of 120/160 s.
# RECIPE_LIMIT (default 500 s) stops it regardless, so that the packing below always runs.
set -uo pipefail
RECIPE=${1:-engine/training/recipes/unet512_cv.json}
DATA=${DATA:-work_data/pack}
RUN=${RUN:-runs/unet512_cv}
DEST=${OUT:-out}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$DEST"
if [ ! -d "$DATA" ] && [ -f "$DATA.tar" ]; then tar xf "$DATA.tar" -C "$(dirname "$DATA")"; fi
if [ -n "${SITE_TGZ:-}" ]; then
    tar xJf "$SITE_TGZ" -C "$($PY -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
fi
nvidia-smi -L || true
$PY -c "import torch, pydicom; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || {
    echo "python3 lacks torch with CUDA or pydicom: see the header of this script"; exit 2; }
if [ "${STEP_BENCH:-1}" != 0 ]; then
    timeout 45 $PY benchmarks/training.py --device cuda --threads 4 --sizes 256 512 --batch 16 --steps 3 \
        --deep-supervision --json "$DEST/gpu_steps.json" || echo "step benchmark failed or timed out"
fi
timeout "${RECIPE_LIMIT:-500}" $PY -m engine train "$RECIPE" --data-root "$DATA" --out "$RUN" 2>&1 | tee "$DEST/train_log.txt"
echo "recipe exit ${PIPESTATUS[0]}"
(cd "$RUN" && tar czf - --ignore-failed-read $(ls -d cv_report.md cv_report.json timings.json recipe.json export \
    teacher/*/card.json teacher/*/metrics.csv teacher/*/log.txt student/*/card.json student/*/metrics.csv \
    student/*/log.txt final/card.json final/metrics.csv final/log.txt pseudo/done.json 2>/dev/null)) \
    | split -b 15m - "$DEST/result.tgz.part-"
ls -la "$DEST"
