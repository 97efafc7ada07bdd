#!/usr/bin/env bash
# Train the shipped Shapes model: the three stages in order, each from the previous one's export.
# About an hour on 2 CPU cores. Re-running continues a killed stage (--resume) and skips finished
# ones. The result to ship is runs/shapes/stage3/model.
set -euo pipefail
cd "$(dirname "$0")/.."
for stage in 1 2 3; do
  if [ -f "runs/shapes/stage$stage/model/config.json" ]; then
    echo "stage $stage already trained"
    continue
  fi
  python -m minigptv2 train --config "configs/shapes/stage$stage.yaml" --resume "$@"
done
