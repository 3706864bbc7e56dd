"""Private home: every file under ``$JOBSCHED_HOME`` 0600 (0700 if its owner may run it) and every
directory 0700, whatever modes an earlier version, a restore or an umask left there. Run at each
server start."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("jobsched.server")


def secure_home(home: Path) -> int:
    """Tighten modes under ``home`` (symlinks are skipped, not followed); returns how many changed."""
    changed = 0
    for entry, want in _walk(Path(home)):
        try:
            st = entry.lstat()
            if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_IXUSR:
                want = 0o700  # a script its owner runs stays runnable, by the owner only
            if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == want:
                continue
            if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
                continue  # sockets, fifos: left alone
            os.chmod(entry, want)
            changed += 1
        except FileNotFoundError:  # removed meanwhile (a finishing replica's files)
            continue
        except PermissionError as e:
            log.warning("cannot make %s private: %s", entry, e.strerror)
    return changed


def _walk(home: Path) -> list[tuple[Path, int]]:
    out: list[tuple[Path, int]] = [(home, 0o700)]
    for root, dirs, files in os.walk(home, followlinks=False):
        r = Path(root)
        out += [(r / d, 0o700) for d in dirs]
        out += [(r / f, 0o600) for f in files]
    return out
