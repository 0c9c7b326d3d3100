#!/usr/bin/env bash
# Run checkov (IaC static analysis) from its own virtual environment.
#
# checkov pins boto3 1.35 and packaging 23 and ships its own `hcl2` module (bc-python-hcl2), all of
# which clash with s3vl's .venv (boto3 >= 1.44.5, python-hcl2), so it lives in .venv-checkov/
# (or $S3VL_CHECKOV_VENV), created on first use and reinstalled only when CHECKOV_VERSION changes.
#
#   tests/tools/checkov.sh -d terraform --framework terraform
#
# Every argument goes to checkov. It runs offline: no policy download, no platform upload.
set -euo pipefail
cd "$(dirname "$0")/../.."

CHECKOV_VERSION=${CHECKOV_VERSION:-3.3.30}
VENV=${S3VL_CHECKOV_VENV:-.venv-checkov}
PYTHON=${PYTHON:-python3}
STAMP="$VENV/.checkov-$CHECKOV_VERSION"

if [ ! -f "$STAMP" ]; then
  echo "==> installing checkov $CHECKOV_VERSION into $VENV" >&2
  if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION" >&2
  touch "$STAMP"
fi

# No network calls: skip the guideline download and any Prisma Cloud integration.
export BC_SKIP_MAPPING=TRUE
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
exec "$VENV/bin/checkov" --skip-download "$@"
