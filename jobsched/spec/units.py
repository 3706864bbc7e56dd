"""Formatting of sizes and CPU, free of pydantic so that the CLI's fast paths can use it."""

from __future__ import annotations


def format_bytes(n: int | float | None) -> str:
    """Human-readable binary size: 1536 MiB -> '1.5Gi'."""
    if n is None:
        return "-"
    n = float(n)
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(n) < 1024 or unit == "Ti":
            return f"{n:.0f}{unit}" if unit == "" else f"{n:.1f}{unit}".replace(".0" + unit, unit)
        n /= 1024
    return f"{n:.1f}Ti"  # pragma: no cover


def format_cpu(milli: int) -> str:
    return f"{milli // 1000}" if milli % 1000 == 0 else f"{milli}m"


def quantity_bytes(n: int | None) -> str | None:
    """Bytes in Kubernetes quantity notation, exact: 8589934592 -> '8Gi', 1536 MiB -> '1536Mi',
    an odd count stays a plain number ('1000')."""
    if n is None:
        return None
    for unit, size in (("Ei", 1 << 60), ("Pi", 1 << 50), ("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20),
                       ("Ki", 1 << 10)):
        if n and n % size == 0:
            return f"{n // size}{unit}"
    return str(n)
