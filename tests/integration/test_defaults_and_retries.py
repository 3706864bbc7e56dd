"""No job runs without a memory limit by accident (queue defaultMemory); starts that would fail the
same way again are not retried (StartFailed); Error exits back off (spec.backoff). Real processes in
real memory cgroups, real SQLite."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.integration.helpers import PY, manifest, wait_for

# Prints the memory limit of the cgroup the replica runs in (v1 or v2), or "none".
CGROUP_LIMIT = r"""
from pathlib import Path
for line in Path("/proc/self/cgroup").read_text().splitlines():
    _, ctrl, path = line.split(":", 2)
    v1 = Path("/sys/fs/cgroup/memory" + path, "memory.limit_in_bytes")
    v2 = Path("/sys/fs/cgroup" + path, "memory.max")
    if "memory" in ctrl.split(",") and v1.exists():
        print("limit", v1.read_text().strip()); break
    if ctrl == "" and v2.exists():
        print("limit", v2.read_text().strip()); break
else:
    print("limit none")
"""


def no_memory(name: str, argv: list[str], **spec: Any) -> dict[str, Any]:
    m = manifest(name, argv, **spec)
    del m["spec"]["template"]["resources"]["requests"]["memory"]
    return m


def cgroup_limit(runtime: Any, name: str) -> str:
    key = f"default/{name}"
    return runtime.backend.read_logs(key, 0, 0).split("limit ", 1)[1].strip()


def test_no_memory_gets_the_queue_default_request_and_limit_with_a_warning(runtime):
    runtime.service.submit(no_memory("nomem", [PY, "-c", CGROUP_LIMIT]))
    st = wait_for(runtime.service, "nomem")
    assert st.phase.value == "Succeeded", [(e.reason, e.message) for e in st.events]
    res = st.attempts[0].resources
    assert res.requests["memory"] == 2**30 and res.limits["memory"] == 2**30
    warn = [e for e in st.events if e.reason == "DefaultMemory"]
    assert warn and warn[0].type == "Warning"
    assert "no memory request: using queue default's default 1Gi" in warn[0].message
    assert st.sizing.default_memory == 2**30 and st.sizing.declared_memory is None
    if runtime.backend.enforcement() != "watchdog":
        assert cgroup_limit(runtime, "nomem") == str(2**30)


def test_a_queue_default_memory_is_honoured(runtime):
    qs = runtime.service.apply_queue({"metadata": {"name": "small"}, "spec": {"defaultMemory": "256Mi"}})
    assert qs.default_memory == 256 * 2**20
    runtime.service.submit(no_memory("small-job", [PY, "-c", CGROUP_LIMIT], queue="small"))
    st = wait_for(runtime.service, "small-job")
    assert st.phase.value == "Succeeded", [(e.reason, e.message) for e in st.events]
    res = st.attempts[0].resources
    assert res.requests["memory"] == res.limits["memory"] == 256 * 2**20
    assert any(e.type == "Warning" and "queue small's default 256Mi" in e.message for e in st.events)
    if runtime.backend.enforcement() != "watchdog":
        assert cgroup_limit(runtime, "small-job") == str(256 * 2**20)


def test_a_declared_memory_is_not_defaulted(runtime):
    runtime.service.submit(manifest("declared", [PY, "-c", "pass"], memory="300Mi"))
    st = wait_for(runtime.service, "declared")
    assert st.attempts[0].resources.limits["memory"] == 300 * 2**20
    assert not any(e.reason == "DefaultMemory" for e in st.events)


def _start_failed(runtime: Any, name: str) -> Any:
    st = wait_for(runtime.service, name)
    assert st.phase.value == "Failed" and st.reason == "StartFailed", (st.reason, st.message)
    assert len(st.attempts) == 1 and st.attempts[0].reason == "StartFailed"
    assert "not retried" in (st.message or "")
    return st


def test_missing_binary_fails_at_once_without_retries(runtime):
    runtime.service.submit(manifest("nobin", ["no-such-program-xyz", "--flag"], maxRetries=3))
    st = _start_failed(runtime, "nobin")
    assert "spec.template.command: 'no-such-program-xyz' not found on the replica's PATH" in st.message


def test_non_executable_command_fails_at_once(runtime, tmp_path):
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    runtime.service.submit(manifest("noexec", [str(script)], maxRetries=3))
    st = _start_failed(runtime, "noexec")
    assert f"spec.template.command: '{script}' is not an executable file" in st.message


def test_missing_working_dir_fails_at_once(runtime, tmp_path):
    m = manifest("nowd", [PY, "-c", "pass"], maxRetries=3)
    m["spec"]["template"]["workingDir"] = str(tmp_path / "gone")
    runtime.service.submit(m)
    st = _start_failed(runtime, "nowd")
    assert f"spec.template.workingDir: {tmp_path / 'gone'} does not exist" in st.message


@pytest.mark.parametrize("env,field,expected", [
    ({"BAD": "a\0b"}, "spec.template.env[0].value", "the value of BAD contains a NUL byte"),
    ({"A=B": "x"}, "spec.template.env[0].name", "variable name 'A=B' contains '='"),
])
def test_invalid_env_is_refused_at_submit_and_at_start(runtime, env, field, expected):
    from jobsched.backends.prestart import check_env
    from jobsched.spec.errors import SpecError

    m = manifest("badenv", [PY, "-c", "pass"], maxRetries=3)
    m["spec"]["template"]["env"] = env
    with pytest.raises(SpecError, match=re.escape(field)):
        runtime.service.submit(m)
    assert runtime.service.list() == []
    # The pre-start check stays as defence in depth (a job stored before submit validated env).
    assert check_env(env) == f"spec.template.env: {expected}"


def test_exec_failure_in_the_shim_is_start_failed_not_an_error_exit(runtime, tmp_path):
    # Exists and is executable (so the pre-start check passes), but its interpreter does not exist:
    # execve fails in the shim with ENOENT, which would fail the same way on every retry.
    script = tmp_path / "run.sh"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    runtime.service.submit(manifest("badshebang", [str(script)], maxRetries=3))
    st = _start_failed(runtime, "badshebang")
    assert f"cannot start '{script}'" in st.message
    assert st.attempts[0].exit_code == 127


def test_error_exits_back_off_exponentially(runtime):
    backoff = {"duration": "0.5s", "factor": 2, "maxDuration": "5m"}
    runtime.service.submit(manifest("flaky", [PY, "-c", "import sys; sys.exit(1)"], maxRetries=2,
                                    backoff=backoff))
    st = wait_for(runtime.service, "flaky")
    assert st.phase.value == "Failed" and [a.reason for a in st.attempts] == ["Error"] * 3
    a = st.attempts
    assert a[1].started_at - a[0].finished_at >= 0.5
    assert a[2].started_at - a[1].finished_at >= 1.0
    msgs = [e.message for e in st.events if e.reason == "BackOff"]
    assert len(msgs) == 2 and "retry 1/2 in 0.5s" in msgs[0] and "retry 2/2 in 1s" in msgs[1]
    assert "exit code 1" in msgs[0]


def test_back_off_is_visible_while_waiting_and_can_be_cancelled(runtime):
    runtime.service.submit(manifest("waits", [PY, "-c", "import sys; sys.exit(2)"], maxRetries=1,
                                    backoff={"duration": "1h", "maxDuration": "2h"}))
    deadline = time.monotonic() + 60
    while (st := runtime.service.get("default", "waits")).reason != "BackOff":
        assert time.monotonic() < deadline and not st.phase.is_terminal(), (st.phase, st.reason)
        time.sleep(0.05)
    assert st.phase.value == "Pending" and len(st.attempts) == 1
    assert "retry 1/1 in 1h" in st.message and "left)" in st.message
    runtime.service.cancel("default", "waits")
    st = wait_for(runtime.service, "waits")
    assert st.phase.value == "Cancelled" and len(st.attempts) == 1
