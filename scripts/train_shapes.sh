#!/usr/bin/env bash
# Train a Shapes model: stage 0 (the ViT alone), then stages 1-4 in order, each from the previous
# one's export (stage 4 is stage 3 continued with the ViT at 168 px). The shipped English
# weights are this script's stage-4 export, saved whole (README, "What the shipped model can do").
#   scripts/train_shapes.sh              the English model   -> runs/shapes/stage4/model
#   scripts/train_shapes.sh shapes-ko    the English + Korean model (issue 17), same recipe, each
#                                        sample in one of the two languages, a 1000-piece tokenizer
#                                        so that Hangul syllables get pieces of their own
#                                        -> runs/shapes-ko/stage4/model (the shipped shapes-ko
#                                        predates stage 0: configs of commit 61fa9dd)
# About 100-120 minutes on 2 CPU cores (measured; stage 0 is 30-40 of them, stage 4 18-23).
# Re-running continues a killed stage (--resume) and skips finished ones; further arguments are
# overrides passed to stages 1-4.
set -euo pipefail
cd "$(dirname "$0")/.."
name=shapes
if [ "${1:-}" = shapes-ko ]; then
  name=shapes-ko
  shift
fi
# Stage 0: the ViT, pretrained on dense shape, colour and box labels (train/perception.py); it
# stays frozen in stages 1-4. Written once, at its end: a killed stage 0 starts again.
if [ ! -f "runs/$name/stage0/eva_vit.safetensors" ]; then
  python -m minigptv2 pretrain-vision --out "runs/$name/stage0"
fi
for stage in 1 2 3 4; do
  out="runs/$name/stage$stage"
  if [ -f "$out/model/config.json" ]; then
    echo "stage $stage already trained"
    continue
  fi
  extra=()
  if [ "$name" = shapes-ko ]; then
    extra=(data.language=en+ko tokenizer_vocab=1000 "out_dir=$out")
    if [ "$stage" -eq 1 ]; then
      extra+=("eva=runs/$name/stage0/eva_vit.safetensors")
    else
      extra+=("init_from=runs/$name/stage$((stage - 1))/model")
    fi
  fi
  python -m minigptv2 train --config "configs/shapes/stage$stage.yaml" --resume "${extra[@]}" "$@"
done
