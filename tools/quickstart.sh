#!/usr/bin/env bash
# The main job in miniature: train a small ResNet-18 on real CIFAR-10 with the recipe the DOM study found
# best (benchmarks/RESULTS.md): zero-crop WAS whose deployed DOM - the seed whose pruned graph has at most
# half the MACs - is trained on purpose in every step beside the AOM, with in-place distillation and no
# random draw (--was-samples 0: two passes per step); export AOM and that DOM
# as verified ONNX files, and profile them side by side (MACs, size, latency on ONNX Runtime, test
# accuracy). About 2-4 minutes on 2 CPU cores.
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
    --limit-train 5000 --limit-test 2000 --crop 0.4 0.6 --target-macs 0.5 --was-samples 0 --distill \
    "${download[@]}" --out "$run" --overwrite
wascompress export "$run/best.pt" --mode aom --out "$run/aom.onnx" --overwrite
wascompress export "$run/best.pt" --mode dom --out "$run/dom.onnx" --overwrite  # the seed trained on purpose
wascompress profile "$run/aom.onnx" "$run/dom.onnx" --batch-sizes 1,32 --runs 20 \
    --dataset cifar10 --limit-test 2000 --markdown "$run/profile.md" --plot "$run/profile.png" --overwrite
