"""CronWorkflow schedules: the five-field cron syntax Argo uses (robfig/cron's standard parser:
lists, ranges, steps, month and weekday names, ``@hourly``-style descriptors) in a ``timezone``.

Pure: :func:`due` answers which scheduled times fell in ``(after, now]`` for an injected clock, so
the controller's loop (and the tests) never wait for real minutes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jobsched.workflows.model import CronWorkflow

_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
           "@hourly": "0 * * * *"}
_NAMES: list[dict[str, int]] = [{}, {}, {},
          {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])},
          {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}]
_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
_FIELDS = ["minute", "hour", "day of month", "month", "day of week"]


class CronError(ValueError):
    pass


def _field(text: str, i: int) -> set[int]:
    lo, hi = _RANGES[i]
    out: set[int] = set()
    for part in text.lower().split(","):
        rng, _, step_s = part.partition("/")
        step = 1
        if step_s:
            if not step_s.isdigit() or int(step_s) == 0:
                raise CronError(f"{_FIELDS[i]}: bad step {step_s!r}")
            step = int(step_s)
        if rng in ("*", "?"):
            a, b = lo, hi
        else:
            ends = [_NAMES[i].get(x, x) for x in rng.split("-", 1)]
            try:
                a = int(ends[0])
                b = int(ends[1]) if len(ends) > 1 else (hi if step_s else a)
            except ValueError:
                raise CronError(f"{_FIELDS[i]}: cannot parse {part!r}") from None
        if i == 4 and b == 7:
            b = 6 if a != 7 else 0
            a = 0 if a == 7 else a
        if not (lo <= a <= hi and lo <= b <= hi and a <= b):
            raise CronError(f"{_FIELDS[i]}: {part!r} is outside {lo}-{hi}")
        out.update(range(a, b + 1, step))
    return out


class Schedule:
    def __init__(self, text: str) -> None:
        spec = _MACROS.get(text.strip(), text.strip())
        parts = spec.split()
        if len(parts) != 5:
            raise CronError(f"{text!r}: expected 5 fields (minute hour day month weekday) or a "
                            f"descriptor such as @hourly")
        self.minute, self.hour, self.dom, self.month, self.dow = (_field(p, i) for i, p in enumerate(parts))
        self.dom_star, self.dow_star = parts[2] in ("*", "?"), parts[4] in ("*", "?")

    def matches(self, t: datetime) -> bool:
        if t.minute not in self.minute or t.hour not in self.hour or t.month not in self.month:
            return False
        dom, dow = t.day in self.dom, (t.isoweekday() % 7) in self.dow
        if self.dom_star or self.dow_star:  # as cron: either restriction alone, or both
            return dom and dow
        return dom or dow

    def times(self, after: float, until: float, tz: ZoneInfo | None = None) -> list[float]:
        """Scheduled instants in ``(after, until]`` (at most one day's worth per minute walked)."""
        zone = tz or UTC
        t = datetime.fromtimestamp(after, zone).replace(second=0, microsecond=0) + timedelta(minutes=1)
        out: list[float] = []
        end = datetime.fromtimestamp(until, zone)
        steps = 0
        while t <= end and steps < 600_000:  # over a year of minutes: a bound, not a limit in use
            if self.matches(t):
                out.append(t.timestamp())
            t += timedelta(minutes=1)
            steps += 1
        return out


def zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone {name!r}") from None


def schedules(cw: CronWorkflow) -> list[str]:
    return ([cw.spec.schedule] if cw.spec.schedule else []) + list(cw.spec.schedules)


def check(cw: CronWorkflow) -> list[str]:
    errs: list[str] = []
    if not schedules(cw):
        errs.append("spec.schedule: required (or spec.schedules)")
    for i, text in enumerate(schedules(cw)):
        path = "spec.schedule" if cw.spec.schedule and i == 0 else f"spec.schedules[{i - bool(cw.spec.schedule)}]"
        try:
            Schedule(text)
        except CronError as e:
            errs.append(f"{path}: {e}")
    try:
        zone(cw.spec.timezone)
    except CronError as e:
        errs.append(f"spec.timezone: {e}")
    return errs


def due(cw: CronWorkflow, after: float, now: float) -> list[float]:
    """Scheduled times in ``(after, now]``, in order."""
    tz = zone(cw.spec.timezone)
    return sorted({t for s in schedules(cw) for t in Schedule(s).times(after, now, tz)})
