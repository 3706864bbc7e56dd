"""Ray backend: gangs as placement groups, replicas as detached actors (see docs/ray.md)."""
