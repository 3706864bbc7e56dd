"""A program with a chosen memory shape, for right-sizing tests and benchmarks (real allocations,
every page touched so the cgroup charges it).

    python memhog.py plateau MB [--ramp S] [--hold S]   ramp up to MB over S seconds, hold, exit 0
    python memhog.py leak MB_PER_S [--seconds S]        grow without bound (exit 0 after S seconds)
    python memhog.py spike BASE_MB PEAK_MB [--hold S]   BASE_MB held; a short spike to PEAK_MB mid-run

It checkpoints nothing; memory shape is all it is for.
"""

from __future__ import annotations

import argparse
import time

MIB = 1 << 20


def _touch(n_mb: int) -> bytearray:
    b = bytearray(n_mb * MIB)
    b[::4096] = b"x" * len(b[::4096])
    return b


def plateau(mb: int, ramp: float, hold: float) -> None:
    hold_on: list[bytearray] = []
    steps = max(1, int(ramp / 0.05))
    per = max(1, mb // steps)
    got = 0
    while got < mb:
        n = min(per, mb - got)
        hold_on.append(_touch(n))
        got += n
        time.sleep(ramp / steps)
    print(f"plateau at {got} MiB", flush=True)
    time.sleep(hold)


def leak(rate: float, seconds: float) -> None:
    hold_on: list[bytearray] = []
    t0 = time.monotonic()
    per = max(1, int(rate * 0.05))
    while time.monotonic() - t0 < seconds:
        hold_on.append(_touch(per))
        time.sleep(0.05)


def spike(base: int, peak: int, hold: float) -> None:
    keep = _touch(base)
    time.sleep(hold / 2)
    burst = _touch(max(peak - base, 1))
    time.sleep(0.05)
    del burst
    time.sleep(hold / 2)
    print(f"done, base {len(keep) // MIB} MiB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="shape", required=True)
    p = sub.add_parser("plateau")
    p.add_argument("mb", type=int)
    p.add_argument("--ramp", type=float, default=1.0)
    p.add_argument("--hold", type=float, default=1.5)
    lk = sub.add_parser("leak")
    lk.add_argument("rate", type=float, help="MiB per second")
    lk.add_argument("--seconds", type=float, default=3600)
    sp = sub.add_parser("spike")
    sp.add_argument("base", type=int)
    sp.add_argument("peak", type=int)
    sp.add_argument("--hold", type=float, default=3.0)
    a = ap.parse_args()
    if a.shape == "plateau":
        plateau(a.mb, a.ramp, a.hold)
    elif a.shape == "leak":
        leak(a.rate, a.seconds)
    else:
        spike(a.base, a.peak, a.hold)


if __name__ == "__main__":
    main()
