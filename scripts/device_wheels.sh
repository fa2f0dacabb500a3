#!/usr/bin/env bash
# Download, here (where PyPI is reachable), the wheels of the packages sam-sr's training needs that the
# lent GPU machines lack (their image has torch, timm, accelerate, OpenCV, SciPy, PyYAML, tqdm and
# TensorBoard; docs/TRAINING.md), at the versions installed in this environment, for that machine's
# Python 3.12. scripts/device_train.sh installs them there. About 8 MiB.
#   bash scripts/device_wheels.sh [PYTHON]      # PYTHON: the environment to read versions from
set -euo pipefail
PY=${1:-${PYTHON:-python3}}
DEST=.device/wheels
mkdir -p "$DEST"
pins=$("$PY" - <<'PYEOF'
from importlib.metadata import version
names = ["albumentations", "albucore", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
         "simsimd", "stringzilla", "omegaconf", "typing-extensions"]
print(" ".join(f"{n}=={version(n)}" for n in names))
PYEOF
)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$DEST" $pins
ls "$DEST"
du -sh "$DEST"
