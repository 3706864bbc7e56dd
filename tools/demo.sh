#!/usr/bin/env bash
# The main example on the embedded default, in a fresh $JOBSCHED_HOME: no set-up beyond `make setup`.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
export JOBSCHED_HOME=${JOBSCHED_HOME:-$(mktemp -d -t jobsched-demo-XXXX)}
export JOBSCHED_PORT=${JOBSCHED_PORT:-8471}
unset JOBSCHED_URL
trap '$BIN/jobsched server stop >/dev/null 2>&1 || true' EXIT
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
$BIN/jobsched list
{ set +x; } 2>/dev/null
echo "== demo finished"
