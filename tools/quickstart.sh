#!/usr/bin/env bash
# The main job in miniature: train a small ResNet-18 with crop + translate WAS on real CIFAR-10, export
# AOM and the best of 4 DOM seeds as verified ONNX files, and profile them side by side (MACs, size,
# latency on ONNX Runtime, test accuracy). About 1-2 minutes on 2 CPU cores.
# Data: $WASCOMPRESS_DATA_DIR, else ../shared/data beside this checkout; where neither holds CIFAR-10,
# it is downloaded (needs internet). Results: RUN_DIR (default runs/quickstart).
set -euo pipefail
cd "$(dirname "$0")/.."
export WASCOMPRESS_DATA_DIR="${WASCOMPRESS_DATA_DIR:-$(cd .. && pwd)/shared/data}"
run="${RUN_DIR:-runs/quickstart}"
download=()
if [ ! -e "$WASCOMPRESS_DATA_DIR/cifar-10-python.tar.gz" ] && [ ! -d "$WASCOMPRESS_DATA_DIR/cifar-10-batches-py" ]; then
    mkdir -p "$WASCOMPRESS_DATA_DIR"
    download=(--download)
fi

wascompress train --model resnet18 --width 0.25 --protocol standard --lr 0.05 --epochs 3 \
    --limit-train 5000 --limit-test 2000 --crop 0.4 0.6 --translate 0.3 --was-prob 0.5 \
    "${download[@]}" --out "$run" --overwrite
wascompress export "$run/best.pt" --mode aom --out "$run/aom.onnx" --overwrite
wascompress export "$run/best.pt" --search-seeds 4 --objective accuracy --out "$run/dom.onnx" --overwrite
wascompress profile "$run/aom.onnx" "$run/dom.onnx" --batch-sizes 1,32 --runs 20 \
    --dataset cifar10 --limit-test 2000 --markdown "$run/profile.md" --plot "$run/profile.png" --overwrite
