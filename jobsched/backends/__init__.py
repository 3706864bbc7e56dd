"""Backends carry out the scheduler's decisions. Only modules under here import kubernetes, ray or
torch.distributed machinery (enforced by .importlinter)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobsched.backends.base import Backend


def make_backend(name: str, **options: object) -> Backend:
    """Instantiate a backend by name, importing its module lazily."""
    if name == "local":
        from jobsched.backends.local.backend import LocalBackend

        return LocalBackend(**options)  # type: ignore[arg-type]
    if name == "kubernetes":
        from jobsched.backends.kubernetes.backend import KubernetesBackend

        return KubernetesBackend(**options)  # type: ignore[arg-type]
    if name == "ray":
        from jobsched.backends.ray.backend import RayBackend

        return RayBackend(**options)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {name!r} (known: local, kubernetes, ray)")
