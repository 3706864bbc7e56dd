"""Import MXNet 1.9.1 under NumPy >= 1.24, which removed the ``np.bool``-style aliases it still uses.

MXNet is an optional extra that lives in its own environment (tools/setup_mxnet_env.sh creates
``.venv-mxnet`` with ``numpy<2`` and ``mxnet==1.9.1``); the core never imports it.
"""

from __future__ import annotations

from typing import Any

_ALIASES = {"bool": bool, "int": int, "float": float, "complex": complex, "object": object, "str": str}
SETUP_HINT = "create the MXNet environment with: bash tools/setup_mxnet_env.sh (makes .venv-mxnet)"


def import_mxnet() -> Any:
    """Return the ``mxnet`` module, restoring the removed NumPy aliases first (idempotent)."""
    import numpy as np

    for name, value in _ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)
    try:
        import mxnet
    except ImportError as e:
        raise ImportError(f"mxnet is not installed in this interpreter ({e}); {SETUP_HINT}") from e
    return mxnet
