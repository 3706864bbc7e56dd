"""Server process plumbing: the listening socket, the one-server-per-home lock, the token file."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from jobsched.server.auth import load_or_create_token, read_client_token, token_matches
from jobsched.server.filemodes import secure_home
from jobsched.server.main import ServerStartError, _bind, _lock_home


def test_listening_socket_is_tcp_so_asyncio_sets_nodelay() -> None:
    # With proto 0 asyncio skips TCP_NODELAY and every response waits ~40 ms for a delayed ACK.
    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        with pytest.raises(ServerStartError, match=r"--port: cannot listen on 127\.0\.0\.1:\d+"):
            _bind("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()


def test_one_server_per_home(tmp_path: Path) -> None:
    (tmp_path / "server.pid").write_text("4242\n")
    fd = _lock_home(tmp_path)
    try:
        with pytest.raises(ServerStartError, match="already runs .* 4242"):
            _lock_home(tmp_path)
    finally:
        os.close(fd)
    os.close(_lock_home(tmp_path))  # free again once the first holder is gone


def test_token_created_once_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBSCHED_TOKEN", raising=False)
    home = tmp_path / "home"
    assert read_client_token(home) is None
    token = load_or_create_token(home)
    assert len(token) >= 40 and load_or_create_token(home) == token
    assert stat.S_IMODE((home / "token").stat().st_mode) == 0o600
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert read_client_token(home) == token
    monkeypatch.setenv("JOBSCHED_TOKEN", "from-env")
    assert read_client_token(home) == "from-env"
    assert token_matches(f"Bearer {token}", token) and token_matches(f"bearer {token}", token)
    assert not token_matches(token, token) and not token_matches(None, token)


def test_secure_home_makes_existing_files_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "runs" / "j").mkdir(parents=True)
    files = {"state.db": 0o644, "state.db-wal": 0o664, "runs/j/rank-0.log": 0o666, "run.sh": 0o755}
    for rel, mode in files.items():
        (home / rel).write_text("x")
        os.chmod(home / rel, mode)
    for d in (home, home / "runs", home / "runs" / "j"):
        os.chmod(d, 0o775)
    outside = tmp_path / "outside"
    outside.write_text("not ours")
    os.chmod(outside, 0o644)
    (home / "link").symlink_to(outside)
    assert secure_home(home) == 7 and secure_home(home) == 0
    mode = {rel: stat.S_IMODE((home / rel).stat().st_mode) for rel in [*files, "runs", "runs/j", "."]}
    assert mode == {"state.db": 0o600, "state.db-wal": 0o600, "runs/j/rank-0.log": 0o600,
                    "run.sh": 0o700, "runs": 0o700, "runs/j": 0o700, ".": 0o700}
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # a symlink is not followed
