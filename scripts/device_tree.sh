#!/usr/bin/env bash
# The working tree around a call on a lent GPU machine, which carries at most 64 MiB (docs/TRAINING.md).
#   bash scripts/device_tree.sh size [CARRY ...]   # MiB that would travel: files git tracks or does not
#                                                  # ignore, present on disk, plus the carried folders
#   bash scripts/device_tree.sh strip [KEEP ...]   # remove the tracked weights sam_sr/weights/*.pt from the
#                                                  # working tree, except those named (e.g. mobile_sam.pt);
#                                                  # git keeps them: nothing is lost
#   bash scripts/device_tree.sh restore            # put every tracked weight file back from git
# Run from the repository's root. strip refuses while a weight file has uncommitted changes.
set -euo pipefail
cmd=${1:-}; shift || true
case $cmd in
  size)
    # tracked files removed from the working tree (strip) do not travel: stat skips them
    tree=$( (git ls-files -z -co --exclude-standard | xargs -0 -r stat -c %s 2>/dev/null || true) | awk '{s+=$1} END {print s+0}')
    carried=0
    for c in "$@"; do carried=$(( carried + $(du -sb "$c" | cut -f1) )); done
    awk -v t="$tree" -v c="$carried" 'BEGIN {printf "tree %.1f MiB + carried %.1f MiB = %.1f MiB (limit 64)\n", t/2^20, c/2^20, (t+c)/2^20; exit ((t+c) > 64*2^20)}'
    ;;
  strip)
    if ! git diff --quiet --diff-filter=M -- sam_sr/weights; then echo "sam_sr/weights has uncommitted changes; commit or restore them first" >&2; exit 2; fi
    git ls-files 'sam_sr/weights/*.pt' | while read -r f; do
      keep=0; for k in "$@"; do [ "$(basename "$f")" = "$k" ] && keep=1; done
      [ $keep = 1 ] || rm -f "$f"
    done
    git ls-files "sam_sr/weights/*.pt" | while read -r f; do if [ -f "$f" ]; then echo "kept $f"; fi; done
    ;;
  restore)
    git checkout -- sam_sr/weights
    echo "restored $(git ls-files 'sam_sr/weights/*.pt' | wc -l) weight files"
    ;;
  *) echo "usage: bash scripts/device_tree.sh size [CARRY ...] | strip [KEEP ...] | restore" >&2; exit 2;;
esac
