"""Argo ``http`` templates: the request, sent beside the workflow loop (Argo's agent), and its verdict.

Requests run on the controller's call pool (:class:`jobsched.workflows.agent.Calls`), so a slow
endpoint never holds up a pass; the step starts a request when the node starts and reads the outcome
on a later pass. A request in flight when the server stops is sent again after the restart (the node is
still Running, and nothing records that it went out). The response body becomes ``outputs.result``
(at most :data:`MAX_BODY` bytes; a larger one fails the step). ``successCondition`` is an expression
over ``request.url``, ``request.method``, ``request.body``, ``request.headers``,
``response.statusCode``, ``response.body`` and ``response.headers`` (header lists by name, any case:
``response.headers["Server"][0]``); without one, a status of 400 or more fails the step.

Requests go out from the server's host, with its network access: ``JOBSCHED_WORKFLOW_HTTP=0`` on the
server turns http steps off (each then fails, saying so).
"""

from __future__ import annotations

import os
from typing import Any

from jobsched.workflows import expr

MAX_BODY = 1 << 20  # bytes of response body kept as outputs.result
DEFAULT_TIMEOUT = 30.0  # seconds, as Argo's timeoutSeconds default


def enabled() -> bool:
    return os.environ.get("JOBSCHED_WORKFLOW_HTTP", "1").strip().lower() not in ("0", "false", "no", "off")


def perform(req: dict[str, Any]) -> dict[str, Any]:
    """Send ``req`` (url, method, headers [(name, value)], body, timeout, verify); the response as
    ``{"statusCode", "body", "headers": {name: [values]}}``. Raises on a transport error."""
    import httpx

    with httpx.Client(verify=req["verify"], timeout=req["timeout"], follow_redirects=True) as client, \
            client.stream(req["method"], req["url"], headers=req["headers"],
                          content=req["body"].encode() if req["body"] is not None else None) as resp:
        chunks, size = [], 0
        for chunk in resp.iter_bytes():
            size += len(chunk)
            if size > MAX_BODY:
                raise ValueError(f"response body over {MAX_BODY} bytes (outputs.result keeps at most that)")
            chunks.append(chunk)
        headers: dict[str, list[str]] = {}
        for name, value in resp.headers.multi_items():
            headers.setdefault(name.lower(), []).append(value)
        return {"statusCode": resp.status_code, "body": b"".join(chunks).decode("utf-8", "replace"),
                "headers": headers}


def verdict(condition: str | None, req: dict[str, Any], resp: dict[str, Any]) -> str | None:
    """None when the step succeeded, else why it failed."""
    if not condition:
        code = resp["statusCode"]
        return f"HTTP status {code}" if code >= 400 else None
    headers = {"request": {k.lower(): [v] for k, v in req["headers"]}, "response": resp["headers"]}
    values = {"request.url": req["url"], "request.method": req["method"], "request.body": req["body"] or "",
              "response.statusCode": resp["statusCode"], "response.body": resp["body"]}

    def resolve(name: str) -> Any:
        if name in values:
            return values[name]
        side, _, rest = name.partition(".headers")
        if side in headers and (not rest or rest.startswith(".")):
            parts = rest[1:].split(".") if rest else []
            h: Any = headers[side]
            if not parts:
                return h
            got = h.get(parts[0].lower(), [])
            return got[int(parts[1])] if len(parts) > 1 and parts[1].isdigit() and int(parts[1]) < len(got) else \
                (got if len(parts) == 1 else None)
        raise expr.ExprError(f"unknown variable {name!r} (http successCondition: request.*, response.*)")

    try:
        ok = expr.evaluate(condition, resolve)
    except expr.ExprError as e:
        return f"successCondition: {e}"
    return None if ok is True or ok == "true" else \
        f"successCondition {condition!r} is false (HTTP status {resp['statusCode']})"
