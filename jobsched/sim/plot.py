"""Matplotlib figures of packing-mode reports: allocated share of GPU capacity against arrivals."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

COLORS = {"random": "#9e9e9e", "bestfit": "#1f77b4", "dotprod": "#ff7f0e", "packing": "#2ca02c",
          "clustering": "#8c564b", "fgd": "#d62728", "jobsched": "#000000"}


def plot_allocation(reports: Mapping[str, Mapping[str, Any]], path: str | Path, zoom: bool = True) -> Path:
    """One panel per report (e.g. per pod list): mean allocation curve per policy with its spread.
    ``zoom`` shows arrivals 80-130 %, where the policies differ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(reports)
    cols = min(n, 2)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(6.4 * cols, 4.4 * rows), squeeze=False)
    for ax, (title, rep) in zip(axes.flat, reports.items(), strict=False):
        for name, pol in rep["policies"].items():
            c = pol["curve"]
            x, y, s = c["arrived_pct"], c["allocated_pct"], c["spread"]
            color = COLORS.get(name)
            label = f"{name} ({pol['allocated_pct'].get('100', float('nan')):.1f}% @100)"
            ax.plot(x, y, label=label, color=color, lw=2.2 if name == "jobsched" else 1.3)
            ax.fill_between(x, [a - b for a, b in zip(y, s, strict=True)],
                            [a + b for a, b in zip(y, s, strict=True)], color=color, alpha=0.15, lw=0)
        ax.plot([0, 130], [0, 130], color="#cccccc", lw=0.8, ls="--")
        if zoom:
            ax.set_xlim(80, 130)
            ax.set_ylim(78, 100)
        ax.set_title(f"{title} ({len(rep.get('seeds', []))} seeds)")
        ax.set_xlabel("arrived GPU requests (% of cluster GPU capacity)")
        ax.set_ylabel("GPU allocated (% of capacity)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
