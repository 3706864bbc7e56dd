"""Job listings in pages, as kubectl pages: ``limit`` and an opaque ``continue`` token.

Pages are keyset pages in (created_at, name, namespace) order, so a job submitted while a client
pages through is neither skipped nor repeated. The token carries the last key and the filters it
was issued for; a token given with other filters, or mangled, is a 422 naming ``continue``.
Summaries come from the store's summary query, which reads no manifest.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from jobsched.server.errors import Invalid
from jobsched.spec.api import JobList, JobSummary

DEFAULT_PAGE = 500  # kubectl's --chunk-size
MAX_PAGE = 1000

Filters = tuple[str | None, str | None, str | None]  # namespace, phase, queue


log = logging.getLogger("jobsched.paging")


def encode(row: dict[str, Any], filters: Filters) -> str:
    raw = json.dumps([row["created_at"], row["name"], row["namespace"], list(filters)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(token: str, filters: Filters) -> tuple[float, str, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, name, namespace, issued = json.loads(raw)
        key = (float(created), str(name), str(namespace))
    except (ValueError, TypeError, binascii.Error):
        raise Invalid("continue: not a continue token from this server (pass back the one a list returned)") \
            from None
    if tuple(issued) != tuple(filters):
        raise Invalid("continue: the token was issued for other filters (namespace, phase, queue); "
                      "list again with the same filters")
    return key


def summary(row: dict[str, Any]) -> JobSummary:
    requests = json.loads(row.pop("last_requests") or "{}")
    nodes = [str(n) for _, n, _ in json.loads(row.pop("last_assignments") or "[]")]
    limit = row.pop("last_limit", None)
    return JobSummary(**row, memory=requests.get("memory") or None, memory_limit=limit,
                      nodes=list(dict.fromkeys(nodes)))


def summaries(rows: list[dict[str, Any]]) -> list[JobSummary]:
    """The rows that make a summary; a row damaged beyond that (a repaired store may keep one) is
    left out of the listing and logged, never a 500."""
    out = []
    for r in rows:
        try:
            out.append(summary(dict(r)))
        except (ValueError, TypeError) as e:
            log.warning("listing: job row %r skipped, it does not read back: %s", r.get("uid"), e)
    return out


def check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PAGE:
        raise Invalid(f"limit: must be between 1 and {MAX_PAGE}, got {limit}")


def page(rows: list[dict[str, Any]], remaining: int, filters: Filters) -> JobList:
    token = encode(rows[-1], filters) if rows and remaining else None
    return JobList(items=summaries(rows), continue_=token, remaining=remaining)
