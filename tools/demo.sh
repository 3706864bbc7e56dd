#!/usr/bin/env bash
# The main example on the embedded default, in a fresh $JOBSCHED_HOME: no set-up beyond `make setup`.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
if [ -z "${JOBSCHED_HOME:-}" ]; then  # a fresh home, removed at the end
  JOBSCHED_HOME=$(mktemp -d -t jobsched-demo-XXXX)
  CLEAN_HOME=$JOBSCHED_HOME
fi
export JOBSCHED_HOME
# a free port unless one is given: a second demo (or a server on 8470/8471) does not collide
export JOBSCHED_PORT=${JOBSCHED_PORT:-$($BIN/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
unset JOBSCHED_URL
cleanup() {
  $BIN/jobsched server stop >/dev/null 2>&1 || true
  if [ -n "${CLEAN_HOME:-}" ]; then rm -rf "$CLEAN_HOME"; fi
}
trap cleanup EXIT
echo "== JOBSCHED_HOME=$JOBSCHED_HOME"
set -x
$BIN/jobsched submit examples/hello.yaml --wait
$BIN/jobsched logs hello
$BIN/jobsched submit examples/gang.yaml --wait
$BIN/jobsched logs gang
$BIN/jobsched submit examples/over-memory.yaml --wait
$BIN/jobsched status over-memory
$BIN/jobsched submit examples/oom-resize.yaml --wait
$BIN/jobsched status oom-resize
$BIN/jobsched queue apply examples/queue.yaml
$BIN/jobsched queues
$BIN/jobsched list
{ set +x; } 2>/dev/null
echo "== demo finished"
