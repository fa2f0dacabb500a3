#!/usr/bin/env bash
# Train the shipped model (sam_sr/weights/crm_r18.pt) from scratch: all nine stages of
# configs/recipes/crm_r18.yaml in order, then the export to runs/crm_r18_recipe.pt. Rerun it after an
# interruption: finished stages are skipped and the unfinished one resumes where it stopped.
#   SAM_SR_DATA=../shared/data scripts/train_default.sh [key=value overrides for every stage]
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SAM_SR_DATA:?set SAM_SR_DATA to the data folder (sod/, horse/), e.g. SAM_SR_DATA=../shared/data}"
exec python -m sam_sr train --recipe crm_r18 "$@"
