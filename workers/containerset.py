"""Run an Argo ``containerSet`` as processes of one replica: ``python -m workers.containerset SPEC``.

SPEC is JSON: ``[{"name", "argv", "env", "cwd", "dependencies"}, ...]``. A container starts once
every container it depends on has exited 0, so independent ones run side by side; one that fails
stops the rest from starting (the ones running are let finish), as Argo's emissary does in a pod.
Every line of output is logged prefixed ``[name]``; the output of the container named ``main`` also
goes, as is, to ``$JOBSCHED_STEP_DIR/containerset-result`` (Argo's ``outputs.result`` of a
containerSet). The exit code is the first failed container's, or 0.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

RESULT_FILE = "containerset-result"


def run(spec: list[dict[str, Any]]) -> int:
    by_name = {c["name"]: c for c in spec}
    codes: dict[str, int] = {}
    started: set[str] = set()
    cond = threading.Condition()
    out_lock = threading.Lock()
    main_out: list[str] = []

    def one(c: dict[str, Any]) -> None:
        try:
            proc = subprocess.Popen(c["argv"], env={**os.environ, **c.get("env", {})}, cwd=c.get("cwd") or None,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    text=True, errors="replace")
        except OSError as e:
            with out_lock:
                print(f"[{c['name']}] cannot start {c['argv'][0]!r}: {e.strerror or e}", flush=True)
            code = 127
        else:
            assert proc.stdout is not None
            for line in proc.stdout:
                with out_lock:
                    sys.stdout.write(f"[{c['name']}] {line}" if line.endswith("\n") else f"[{c['name']}] {line}\n")
                    sys.stdout.flush()
                    if c["name"] == "main":
                        main_out.append(line)
            code = proc.wait()
        with cond:
            codes[c["name"]] = code
            cond.notify_all()

    threads: list[threading.Thread] = []
    with cond:
        while True:
            failed = any(code != 0 for code in codes.values())
            ready = [] if failed else [n for n, c in by_name.items() if n not in started
                                       and all(codes.get(d) == 0 for d in c.get("dependencies", []))]
            for name in ready:
                started.add(name)
                t = threading.Thread(target=one, args=(by_name[name],), daemon=True)
                threads.append(t)
                t.start()
            if len(codes) == len(started) and not ready:
                break
            cond.wait()
    for t in threads:
        t.join()
    step_dir = os.environ.get("JOBSCHED_STEP_DIR")
    if step_dir and "main" in by_name:
        Path(step_dir, RESULT_FILE).write_text("".join(main_out))
    failed_codes = [codes[n] for n in by_name if codes.get(n, 0) != 0]
    not_run = [n for n in by_name if n not in started]
    if not_run and failed_codes:
        print(f"[containerSet] not started after a failure: {', '.join(not_run)}", flush=True)
    return failed_codes[0] if failed_codes else 0


def main() -> None:
    sys.exit(run(json.loads(sys.argv[1])))


if __name__ == "__main__":
    main()
