"""A stdlib-only GET for the CLI's fast paths (``jobsched list``): no httpx, no pydantic, so a
command that only reads a list starts in a fraction of the time. Anything unusual (no server,
an error status, autostart needed) returns None and the caller takes the full SDK path, which
reports it properly."""

from __future__ import annotations

import http.client
import json
import os
from typing import Any
from urllib.parse import urlencode, urlsplit

from jobsched.server.auth import default_home, default_local_url, read_client_token


def get_json(path: str, params: dict[str, str] | None = None, timeout: float = 30.0) -> Any | None:
    try:
        url = urlsplit((os.environ.get("JOBSCHED_URL") or default_local_url()).rstrip("/"))
    except ValueError:
        return None
    if url.scheme != "http" or not url.hostname:
        return None  # https and anything else: the full client
    token = read_client_token(default_home())
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    query = f"?{urlencode(params)}" if params else ""
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)
    try:
        conn.request("GET", url.path + path + query, headers=headers)
        resp = conn.getresponse()
        if resp.status != 200:
            return None
        return json.loads(resp.read())
    except (OSError, ValueError, http.client.HTTPException):
        return None
    finally:
        conn.close()
