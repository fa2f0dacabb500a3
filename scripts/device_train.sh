#!/usr/bin/env bash
# One training run on a lent GPU machine, in one call (docs/TRAINING.md, "On a lent GPU machine").
# Run from the repository's root, where the call starts. It reads the pack that
# scripts/pack_training.py wrote (PACK, default .device/pack) and the wheels in .device/wheels (the
# Python packages that machine lacks), trains for at most BUDGET seconds (default 420), and leaves in
# $OUT what comes back: env.txt (versions, GPU), train.log, final.pt or last.pt (the newest checkpoint:
# every train.ckpt_every iterations), iter_<N>.pt (those train.keep_at kept), run.tgz (the run's
# config.yaml and TensorBoard events).
#   OUT=... bash scripts/device_train.sh [key=value ...]       # overrides go to the training config
# Tested here on the CPU (tests/scripts/test_device_train.py) with PYTHON=.venv/bin/python NO_WHEELS=1.
# Exit status: training's (0 done; 124 stopped at BUDGET, the last checkpoint still copied), 2 bad setup.
set -uo pipefail
: "${OUT:?set OUT to the folder whose files come back}"
PACK=${PACK:-.device/pack}
BUDGET=${BUDGET:-420}
PY=${PYTHON:-python3}
[ -f "$PACK/train.yaml" ] || { echo "no pack at $PACK: run scripts/pack_training.py first" >&2; exit 2; }
if [ -z "${NO_WHEELS:-}" ]; then
  ls .device/wheels/*.whl >/dev/null 2>&1 || { echo "no wheels in .device/wheels (docs/TRAINING.md)" >&2; exit 2; }
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .device/wheels/*.whl || exit 2
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} TQDM_MININTERVAL=30 PYTHONUNBUFFERED=1
"$PY" - >"$OUT/env.txt" 2>&1 <<'EOF'
import platform, torch, timm, accelerate, albumentations, cv2
print("python", platform.python_version(), "torch", torch.__version__, "timm", timm.__version__,
      "accelerate", accelerate.__version__, "albumentations", albumentations.__version__, "cv2", cv2.__version__)
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
out_dir=$("$PY" -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['train']['out_dir'])" "$PACK/train.yaml")
for kv in "$@"; do case $kv in train.out_dir=*) out_dir=${kv#train.out_dir=};; esac; done
start=$(date +%s)
timeout --signal=INT --kill-after=30 "$BUDGET" "$PY" -m sam_sr train --config "$PACK/train.yaml" "$@" 2>&1 \
  | tr '\r' '\n' >"$OUT/train.log"
rc=${PIPESTATUS[0]}
echo "exit $rc after $(( $(date +%s) - start )) s" >>"$OUT/train.log"
if [ -f "$out_dir/final.pt" ]; then cp "$out_dir/final.pt" "$OUT/"; elif [ -f "$out_dir/last.pt" ]; then cp "$out_dir/last.pt" "$OUT/"; fi
for f in "$out_dir"/iter_*.pt; do [ -f "$f" ] && cp "$f" "$OUT/"; done    # train.keep_at: at most 4 (8 files come back)
[ -d "$out_dir" ] && tar czf "$OUT/run.tgz" -C "$out_dir" --exclude state --exclude '*.pt' .
tail -n 3 "$OUT/train.log"
exit "$rc"
