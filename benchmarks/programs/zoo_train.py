"""Train a configuration of the estimator's zoo (jobsched/rightsizing/zoo.py) for a few real steps,
as a plain command: no factory is declared to jobsched, so it cannot be estimated before it runs.

    python zoo_train.py CONFIG_NAME [--steps N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from jobsched.rightsizing.baseline import measure_peak
    from jobsched.rightsizing.zoo import CONFIGS

    ap = argparse.ArgumentParser()
    ap.add_argument("config", choices=[c.name for c in CONFIGS])
    ap.add_argument("--steps", type=int, default=3)
    a = ap.parse_args()
    cfg = next(c for c in CONFIGS if c.name == a.config)
    out = measure_peak(cfg.factory, cfg.kwargs, steps=a.steps)
    print(f"{cfg.name}: {a.steps} steps, peak RSS {out['peak_bytes'] >> 20} MiB", flush=True)


if __name__ == "__main__":
    main()
