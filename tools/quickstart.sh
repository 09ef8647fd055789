#!/usr/bin/env bash
# The main job in miniature: train a small ResNet-18 with crop + translate WAS on real CIFAR-10, then
# export AOM and a DOM seed as verified ONNX files and print what they cost. About 3 minutes on 2 CPU cores.
# Data: $WASCOMPRESS_DATA_DIR, else ../shared/data beside this checkout; RUN_DIR (default runs/quickstart).
set -euo pipefail
cd "$(dirname "$0")/.."
export WASCOMPRESS_DATA_DIR="${WASCOMPRESS_DATA_DIR:-$(cd .. && pwd)/shared/data}"
run="${RUN_DIR:-runs/quickstart}"

wascompress train --model resnet18 --width 0.25 --protocol standard --lr 0.05 --epochs 3 \
    --limit-train 5000 --limit-test 2000 --crop 0.4 0.6 --translate 0.3 --was-prob 0.5 \
    --out "$run" --overwrite
wascompress export "$run/best.pt" --mode aom --out "$run/aom.onnx" --overwrite
wascompress export "$run/best.pt" --search-seeds 4 --objective accuracy --out "$run/dom.onnx" --overwrite
