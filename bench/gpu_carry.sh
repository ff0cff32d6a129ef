#!/usr/bin/env bash
# Prepare .carry/ (git-ignored) for a device session: what bench/gpu_check.sh needs on a bare CUDA machine.
#   .carry/whl/         wheels missing from the device image (Python 3.12, x86-64): rasterio, rio-cogeo, shapely, ...
#   .carry/data/train/  UC Merced training images, N per class (default 5: 80 images, ~9 MB)
#   .carry/data/val/    UC Merced validation images, 2 per class (32 images)
# Everything that travels (working tree + .carry) must stay under 64 MiB: the script prints the total.
#
#   bench/gpu_carry.sh [PER_CLASS]     then: device run with carry [".carry"], command "bench/gpu_check.sh"
set -euo pipefail
cd "$(dirname "$0")/.."
PER_CLASS=${1:-5}
SHARED=${SHARED_DATA:-../shared/data}
rm -rf .carry && mkdir -p .carry/whl .carry/data/train .carry/data/val
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .carry/whl rasterio==1.4.3 affine cligj click-plugins shapely rio-cogeo morecantile pyproj==3.6.1 pydantic pydantic-core \
    annotated-types typing-inspection cachetools 2>&1 | grep -v "^WARNING: Location" || true
for class_dir in "$SHARED"/ucmerced/train/*/; do
    class=$(basename "$class_dir")
    mkdir -p ".carry/data/train/$class" ".carry/data/val/$class"
    ls "$class_dir" | sort | awk -v n="$PER_CLASS" 'NR % int(75 / n) == 1 && c++ < n' | while read -r f; do cp "$class_dir/$f" ".carry/data/train/$class/"; done
    ls "$SHARED/ucmerced/val/$class" | sort | head -n 2 | while read -r f; do cp "$SHARED/ucmerced/val/$class/$f" ".carry/data/val/$class/"; done
done
tree_mb=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
carry_mb=$(du -sb .carry | cut -f1)
echo "train $(find .carry/data/train -type f | wc -l) images, val $(find .carry/data/val -type f | wc -l); wheels $(ls .carry/whl | wc -l)"
echo "travels: tree $((tree_mb / 1048576)) MiB + .carry $((carry_mb / 1048576)) MiB = $(((tree_mb + carry_mb) / 1048576)) MiB (limit 64)"
if [ $(((tree_mb + carry_mb) / 1048576)) -ge 64 ]; then
    # a run's training state under models/wip is the usual culprit (rs-s2's is 37.5 MB): keep it out of the call
    echo "over the limit; the largest tracked files:"
    git ls-files -z | xargs -0 du -b | sort -n | tail -n 3
    echo "untrack one for the call:  git rm -q --cached FILE && echo FILE >> .git/info/exclude"
    echo "and after it:              git reset -q -- FILE, then delete its line from .git/info/exclude"
fi
