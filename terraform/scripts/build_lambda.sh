#!/usr/bin/env bash
# Build the query Lambda's deployment folder with its requirements vendored:
#   lambda/build/package/ = lambda/ (without tests, build output, caches) + pip install -r lambda/requirements.txt
# The module zips that folder when lambda_source_dir points at it (the complete example does).
#
#   terraform/scripts/build_lambda.sh                 # arm64, python 3.12 (the module's defaults)
#   LAMBDA_ARCH=x86_64 LAMBDA_PYTHON=3.11 terraform/scripts/build_lambda.sh
#
# Wheels are chosen for the Lambda platform (manylinux, the given architecture and Python), not for
# the machine running the script. Re-run it whenever lambda/ or lambda/requirements.txt changes.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
src="${S3VL_LAMBDA_SOURCE:-$repo/lambda}"
out="${S3VL_LAMBDA_BUILD:-$src/build/package}"
requirements="${S3VL_LAMBDA_REQUIREMENTS:-$src/requirements.txt}"
arch="${LAMBDA_ARCH:-arm64}"
python_version="${LAMBDA_PYTHON:-3.12}"
pip="${PIP:-python3 -m pip}"

case "$arch" in
  arm64) platform=manylinux2014_aarch64 ;;
  x86_64) platform=manylinux2014_x86_64 ;;
  *) echo "LAMBDA_ARCH must be arm64 or x86_64, not $arch" >&2; exit 2 ;;
esac

[ -f "$src/handler.py" ] || { echo "no handler.py in $src" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"

# The sources: everything but tests, previous builds and caches.
tar -C "$src" \
  --exclude=./build --exclude=./tests --exclude='__pycache__' --exclude='*.pyc' \
  --exclude=./.pytest_cache --exclude=./requirements.txt \
  -cf - . | tar -C "$out" -xf -

# The requirements, if any (comments and blank lines do not count).
if grep -qvE '^[[:space:]]*(#|$)' "$requirements" 2>/dev/null; then
  $pip install --quiet --disable-pip-version-check --no-compile \
    --target "$out" --implementation cp --python-version "$python_version" \
    --platform "$platform" --only-binary=:all: -r "$requirements"
fi

find "$out" -name '__pycache__' -type d -prune -exec rm -rf {} +
rm -rf "$out/bin"   # console scripts of the dependencies: not importable, not needed
echo "$out"
