#!/usr/bin/env bash
# Create the optional MXNet environment used by kernels/mxnet_*.py and tests/kernels/test_mxnet.py.
#
# MXNet 1.9.1 (the last release) needs NumPy < 2, which must never constrain the core install, so it
# lives in its own virtual environment: .venv-mxnet at the repository root (git-ignored by .venv-*/).
# The venv reuses nothing from the global site-packages; it gets its own CPU-only torch-free stack.
#
# Usage: bash tools/setup_mxnet_env.sh [VENV_DIR]     (default: <repo>/.venv-mxnet)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${1:-$repo_root/.venv-mxnet}"
python_bin="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
  "$python_bin" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "numpy<2" "mxnet==1.9.1"
# Smoke test through the same compatibility shim the kernels use (np.bool was removed in NumPy 1.24).
PYTHONPATH="$repo_root" "$venv/bin/python" - <<'PY'
from kernels import mxnet_compat
mx = mxnet_compat.import_mxnet()
a = mx.nd.ones((2, 3))
print(f"mxnet {mx.__version__} OK: sum={float(a.sum().asscalar())}")
PY
echo "MXNet environment ready: $venv"
