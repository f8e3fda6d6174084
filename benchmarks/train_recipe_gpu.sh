#!/usr/bin/env bash
# One GPU session does the whole cross-validated recipe and packs what it made into $OUT.
#
#   bash benchmarks/train_recipe_gpu.sh [RECIPE]        (from the repository root)
#
# Needs the recipe's data pack in work_data/pack (python -m engine.training.pack --recipe
# ../shared/data work_data/pack, about 50 MB) and python3 with torch, numpy, scipy, Pillow and
# safetensors (no other LungLens dependency is imported by training). Writes into $OUT (or
# ./out): gpu_steps.json (s/step of the U-Net at 256/512, fp32 and bf16), train_log.txt, and
# result.tgz.part-* (split at 15 MiB: cat them | tar xz) holding cv_report.{md,json},
# timings.json, recipe.json, export/ (fp16 distilled model + ensemble, with cards), the
# teacher/student/final cards and metrics.csv files and the pseudo-label statistics.
# The recipe stops itself by its time budgets (about 8 minutes on one H200); RECIPE_LIMIT
# (default 500 s) stops it regardless, so that the packing below always runs.
set -uo pipefail
RECIPE=${1:-engine/training/recipes/unet512_cv.json}
DATA=${DATA:-work_data/pack}
RUN=${RUN:-runs/unet512_cv}
DEST=${OUT:-out}
PY=${PY:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$DEST"
nvidia-smi -L || true
$PY -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
timeout 45 $PY benchmarks/training.py --device cuda --threads 4 --sizes 256 512 --batch 16 --steps 3 \
    --deep-supervision --json "$DEST/gpu_steps.json" || echo "step benchmark failed or timed out"
timeout "${RECIPE_LIMIT:-500}" $PY -m engine train "$RECIPE" --data-root "$DATA" --out "$RUN" 2>&1 | tee "$DEST/train_log.txt"
echo "recipe exit ${PIPESTATUS[0]}"
(cd "$RUN" && tar czf - --ignore-failed-read $(ls -d cv_report.md cv_report.json timings.json recipe.json export \
    teacher/*/card.json teacher/*/metrics.csv student/*/card.json student/*/metrics.csv final/card.json \
    final/metrics.csv pseudo/done.json 2>/dev/null)) | split -b 15m - "$DEST/result.tgz.part-"
ls -la "$DEST"
