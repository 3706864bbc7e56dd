"""retryStrategy (limits, policies, backoff, expression), podSpecPatch with {{retries}}, and OOM
right-sizing of a workflow step, end to end on the local backend."""

from __future__ import annotations

import pytest

from tests.workflows.conftest import by_display

pytestmark = pytest.mark.slow

# A step that fails until its own counter file reaches N: $JOBSCHED_STEP_DIR persists across retries.
FLAKY = 'n=$(cat "$JOBSCHED_STEP_DIR/count" 2>/dev/null || echo 0); echo $((n+1)) > "$JOBSCHED_STEP_DIR/count"; '

RETRIES = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: retries}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      failFast: false
      tasks:
      - {name: runtime-retried, template: flaky-3}
      - {name: limit-one, template: always-fails}
      - {name: backoff, template: backoff}
      - {name: expression, template: expression}
      - {name: on-error, template: on-error}
      - {name: patched, template: patched}
  - name: flaky-3
    retryStrategy: {limit: "3"}
    container:
      image: alpine
      command: [sh, -c, 'FLAKY [ "$n" -ge 2 ]']
  - name: always-fails
    retryStrategy: {limit: 1, retryPolicy: Always}
    container: {image: alpine, command: ["false"]}
  - name: backoff
    retryStrategy:
      limit: 2
      retryPolicy: OnFailure
      backoff: {duration: "300ms", factor: "2", cap: "1s", maxDuration: "30s"}
    container:
      image: alpine
      command: [sh, -c, 'FLAKY [ "$n" -ge 2 ]']
  - name: expression
    retryStrategy:
      limit: 5
      expression: 'asInt(lastRetry.exitCode) == 3 && lastRetry.status == "Failed"'
    container:
      image: alpine
      command: [sh, -c, 'FLAKY exit $((n + 3))']
  - name: on-error
    retryStrategy: {limit: 3, retryPolicy: OnError}
    container: {image: alpine, command: ["false"]}
  - name: patched
    retryStrategy: {limit: 3}
    podSpecPatch: |
      containers:
      - name: main
        env: [{name: TRY, value: "{{retries}}"}]
        resources:
          limits: {memory: "{{=(asInt(retries) + 1) * 64}}Mi"}
    container:
      image: alpine
      command: [sh, -c, 'echo "try $TRY limit $JOBSCHED_MEMORY_LIMIT"; [ "$TRY" = 1 ]']
""".replace("FLAKY ", FLAKY)


def test_retry_strategies(wfh):
    st = wfh.run(RETRIES)
    n = by_display(st)
    # A plain limit: the step's TrainingJob gets maxRetries and the runtime retries it (one job).
    rr = n["runtime-retried"]
    assert rr.phase == "Succeeded" and rr.runtime_retries
    assert [a.phase for a in rr.attempts] == ["Failed", "Failed", "Succeeded"]
    assert len({a.job for a in rr.attempts}) == 1
    assert wfh.runtime.service.get("default", rr.attempts[0].job).manifest["spec"]["maxRetries"] == 3
    # limit 1: two attempts in all
    assert n["limit-one"].phase == "Failed" and len(n["limit-one"].attempts) == 2
    # backoff: 300ms then 600ms between attempts (engine-driven: one job per attempt)
    b = n["backoff"]
    assert b.phase == "Succeeded" and len({a.job for a in b.attempts}) == 3
    gaps = [b.attempts[i + 1].started_at - b.attempts[i].finished_at for i in range(2)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6
    # expression: retried after exit 3, not after exit 4
    e = n["expression"]
    assert e.phase == "Failed" and [a.exit_code for a in e.attempts] == [3, 4]
    # OnError: an ordinary failure is not retried
    assert n["on-error"].phase == "Failed" and len(n["on-error"].attempts) == 1
    # podSpecPatch with {{retries}}: env and memory re-rendered for every attempt
    p = n["patched"]
    assert p.phase == "Succeeded" and not p.runtime_retries
    assert [a.memory_limit for a in p.attempts] == [64 << 20, 128 << 20]
    assert p.outputs["result"] == f"try 1 limit {128 << 20}"
    assert st.phase == "Failed"


OOM = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: oom}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      failFast: false
      tasks:
      - {name: resized, template: hungry}
      - {name: patched, template: hungry-patched}
  - name: hungry
    retryStrategy: {limit: 3}
    container:
      image: python
      command: [python, -c, "b = bytearray(120 << 20); b[::4096] = b'x' * len(b[::4096]); print('ok')"]
      resources: {requests: {memory: 80Mi}, limits: {memory: 80Mi}}
  - name: hungry-patched
    retryStrategy: {limit: 3}
    podSpecPatch: '{"containers": [{"name": "main", "env": [{"name": "TRY", "value": "{{retries}}"}], "resources": {"limits": {"memory": "{{=72 + asInt(retries) * 8}}Mi"}}}]}'
    container:
      image: python
      command: [python, -c, "import os; b = bytearray(120 << 20); b[::4096] = b'x' * len(b[::4096]); print('try', os.environ['TRY'])"]
"""


def test_oom_killed_step_is_resized_not_retried_at_the_same_size(wfh):
    st = wfh.run(OOM, timeout=90)
    n = by_display(st)
    r = n["resized"]  # runtime right-sizing (maxRetries = limit)
    assert r.phase == "Succeeded", r.message
    assert r.attempts[0].reason == "OOMKilled"
    assert r.attempts[1].memory_limit > r.attempts[0].memory_limit
    p = n["patched"]  # {{retries}} patch: the engine retries, memory at least what the runtime advises
    assert p.phase == "Succeeded", p.message
    assert p.attempts[0].reason == "OOMKilled" and p.attempts[0].memory_limit == 72 << 20
    assert p.attempts[1].memory_limit >= int(72 * 1.5) << 20  # grown, not the patch's 80Mi
    assert p.outputs["result"] == f"try {len(p.attempts) - 1}"
