"""jobsched: a gang scheduler for ML training jobs with memory right-sizing.

Heavy modules are imported lazily so that ``jobsched --help`` stays fast.
"""

from __future__ import annotations

from jobsched.version import __version__

TYPE_CHECKING = False  # not `typing`: every CLI start imports this first, before its Ctrl-C handling
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from jobsched.sdk.client import Client

__all__ = ["Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Client":
        from jobsched.sdk.client import Client

        return Client
    raise AttributeError(name)
