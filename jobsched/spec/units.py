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
