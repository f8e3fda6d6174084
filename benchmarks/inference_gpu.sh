#!/usr/bin/env bash
# One GPU session measures Run AI on the device and packs the JSON into $OUT (issue 15's GPU goal:
# a 300-slice scan under 0.5 s end to end).
#
#   SITE_TGZ=.whl/site.tar.xz bash benchmarks/inference_gpu.sh        (from the repository root)
#
# Needs python3 with torch (CUDA), numpy, scipy and safetensors; SITE_TGZ=archive.tar.xz unpacks
# what the device image lacks (connected-components-3d, pydicom with its dist-info) into
# python3's site-packages first (docs/TRAINING.md says how the archive was made). Writes into
# $OUT (or ./out):
#   cold.json       a fresh process per run: models loaded inside the clock (a first press), fp32 and bf16;
#   warm.json       the same predictor's second reading, the lungs found by the reading (beside the networks);
#   app.json        warm, the lungs found before the clock (the app finds them when a scan opens);
#   profile.json    one warm reading (app's way) under cProfile and torch.profiler: the host functions
#                   and the device kernels that take the time; profile.txt their tables.
# Each step has its own time limit, so that the rest still runs; about 4 minutes on an H200.
# A dry run of the flow on a CPU: DEVICE=cpu CASES=phantom:24 PROFILE_SLICES=24 bash benchmarks/inference_gpu.sh
set -uo pipefail
DEST=${OUT:-out}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
CASES=${CASES:-phantom}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$DEST"
if [ -n "${SITE_TGZ:-}" ]; then
    tar xJf "$SITE_TGZ" -C "$($PY -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
fi
nvidia-smi -L || true
if [ "$DEVICE" = cuda ]; then
    $PY -c "import torch, cc3d; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || {
        echo "python3 lacks torch with CUDA or connected-components-3d: see the header of this script"; exit 2; }
fi
B="$PY benchmarks/inference.py --device $DEVICE --cases $CASES --json --no-gate-run"
timeout 150 $B --runtimes ${RUNTIMES:-fp32,bf16} --repeat 1 > "$DEST/cold.json" || echo "cold runs failed or timed out"
timeout 120 $B --runtimes ${RUNTIMES:-fp32,bf16} --repeat 2 --warm > "$DEST/warm.json" || echo "warm runs failed or timed out"
timeout 120 $B --runtimes ${RUNTIMES:-fp32,bf16} --repeat 2 --warm --given-lungs > "$DEST/app.json" || echo "app runs failed or timed out"
timeout 90 $PY benchmarks/inference_profile.py --device "$DEVICE" --slices "${PROFILE_SLICES:-300}" --text "$DEST/profile.txt" > "$DEST/profile.json" \
    || echo "profile failed or timed out"
for f in cold warm app; do
    $PY - "$DEST/$f.json" <<'PYEOF' || true
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit(f"{sys.argv[1]}: {e}")
for c in d["cases"]:
    print(sys.argv[1].split("/")[-1], c.get("runtime"), "volume_s", c.get("volume_s"), "network_s", c.get("network_s"),
          "visible_slice_s", c.get("visible_slice_s"), {k: v for k, v in (c.get("timings") or {}).items() if k.endswith("_s")})
PYEOF
done
ls -la "$DEST"
