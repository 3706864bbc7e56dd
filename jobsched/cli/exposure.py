"""``jobsched server --host``: a server reachable from other machines speaks TLS, or is told in so
many words (``--insecure-http``) that its tokens will cross the network in clear text."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

from jobsched.cli.output import fail


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(host: str, tls_cert: Path | None, tls_key: Path | None,
                   insecure_http: bool) -> tuple[Path, Path] | None:
    """The (cert, key) to serve with, or None for plain HTTP; exits 2 on a bad combination."""
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key: give both, or neither")
    if tls_cert is not None and tls_key is not None:
        if insecure_http:
            fail("--insecure-http: not with --tls-cert/--tls-key")
        for flag, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
            if not path.is_file():
                fail(f"{flag}: no such file: {path}")
        return tls_cert.expanduser().resolve(), tls_key.expanduser().resolve()
    if is_loopback(host):
        return None
    if not insecure_http:
        fail(f"--host {host}: a server reachable from other machines needs TLS (--tls-cert FILE "
             "--tls-key FILE), or --insecure-http to serve plain HTTP anyway")
    print(f"warning: --insecure-http: serving plain HTTP on {host}: bearer tokens and job data cross "
          "the network unencrypted; use --tls-cert/--tls-key", file=sys.stderr, flush=True)
    return None
