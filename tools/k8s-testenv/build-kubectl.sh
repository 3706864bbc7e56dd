#!/usr/bin/env bash
# Optional: kubectl of the pinned Kubernetes release, built into the test control plane's bin
# directory ($K8S_TESTENV_BIN or .cache/k8s-testenv/bin). tests/k8s/test_native.py then runs the
# real `kubectl apply` and `kubectl describe`; without it, they make the same API calls.
#
# Built from a copy of this module (kubectl needs a few modules the control plane does not), so
# go.mod/go.sum here, and with them testenv.sh's build stamp, stay as they are.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${K8S_TESTENV_BIN:-$ROOT/.cache/k8s-testenv/bin}"
if [[ -x "$BIN/kubectl" && "${1:-}" != "--force" ]]; then
  echo "build-kubectl: $BIN/kubectl exists (--force to rebuild)" >&2
  exit 0
fi
command -v go >/dev/null || { echo "build-kubectl: Go not found" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$HERE/go.mod" "$HERE/go.sum" "$HERE/cmd" "$work/"
cd "$work"
v="$(go list -m -f '{{.Version}}' k8s.io/kubernetes)"
IFS=. read -r major minor _ <<<"${v#v}"
flags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done
mkdir -p "$BIN"
GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0 go build -trimpath -ldflags="$flags" -o "$work/kubectl" \
  k8s.io/kubernetes/cmd/kubectl
mv "$work/kubectl" "$BIN/kubectl"
"$BIN/kubectl" version --client >&2
