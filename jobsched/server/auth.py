"""Where a jobsched server lives and how clients authenticate to it.

Shared by the server (writes the token) and the SDK (reads it). No heavy imports here: the CLI
imports this module on its start-up path.

* ``$JOBSCHED_HOME`` (default ``~/.jobsched``): the server's state directory.
* ``$JOBSCHED_HOME/token``: the bearer token, written at the server's first start (mode 0600).
* ``JOBSCHED_TOKEN``: a token given to clients directly (overrides the file).
* ``JOBSCHED_URL``: where clients find the server (default ``http://127.0.0.1:$JOBSCHED_PORT``).
* ``JOBSCHED_PORT``: the default port (8470) of the local server, autostarted or not.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

DEFAULT_PORT = 8470
DEFAULT_HOST = "127.0.0.1"
TOKEN_FILE = "token"


def default_home() -> Path:
    env = os.environ.get("JOBSCHED_HOME")
    return Path(env).expanduser() if env else Path.home() / ".jobsched"


def default_port() -> int:
    raw = os.environ.get("JOBSCHED_PORT")
    if not raw:
        return DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"JOBSCHED_PORT: not a port number: {raw!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"JOBSCHED_PORT: out of range: {port}")
    return port


def default_local_url() -> str:
    return f"http://{DEFAULT_HOST}:{default_port()}"


def ensure_home(home: Path) -> Path:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    return home


def load_or_create_token(home: Path) -> str:
    """The server's token: read ``home/token``, or create it (0600, never world-readable)."""
    ensure_home(home)
    path = home / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        token = path.read_text().strip()
        if not token:
            raise RuntimeError(f"{path}: empty token file; delete it to create a new one") from None
        return token
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def read_client_token(home: Path) -> str | None:
    """A client's token: ``JOBSCHED_TOKEN``, else ``home/token`` if it exists."""
    env = os.environ.get("JOBSCHED_TOKEN")
    if env:
        return env.strip()
    try:
        return (home / TOKEN_FILE).read_text().strip() or None
    except (FileNotFoundError, PermissionError):
        return None


def token_matches(header: str | None, token: str) -> bool:
    """Check an ``Authorization: Bearer <token>`` header in constant time."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
