#!/usr/bin/env bash
# Real Kubernetes test control plane: etcd + kube-apiserver + KWOK on loopback.
#
#   testenv.sh build                 build the binaries into .cache/k8s-testenv/bin (when missing)
#   testenv.sh start DIR [COMPONENT] start (or restart the stopped parts of) a control plane in DIR;
#                                    COMPONENT: one of etcd, kube-apiserver, kwok, kube-scheduler
#                                    (kube-scheduler only starts when named)
#   testenv.sh stop DIR [COMPONENT]  stop all (or one component): SIGTERM, then SIGKILL after 10 s
#   testenv.sh env DIR               print `export KUBECONFIG=...`
#
# See docs/k8s-testenv.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${K8S_TESTENV_BIN:-$ROOT/.cache/k8s-testenv/bin}"
TOOLS=(etcd kube-apiserver kube-scheduler kwok)
COMPONENTS=(etcd kube-apiserver kwok kube-scheduler) # start order; stop runs in reverse
DEFAULT_COMPONENTS=(etcd kube-apiserver kwok)
READY_TIMEOUT="${K8S_TESTENV_READY_TIMEOUT:-120}"

die() { echo "testenv: $*" >&2; exit 1; }
log() { echo "testenv: $*" >&2; }

# --- build -------------------------------------------------------------------

source_stamp() {
  # Hash of everything that decides the binaries (pins, wrappers, Go version, this
  # build code): any change triggers a rebuild.
  (cd "$HERE" && cat go.mod go.sum cmd/*/main.go && go env GOVERSION && declare -f cmd_build build_ldflags) |
    sha256sum | cut -d' ' -f1
}

build_ldflags() {
  # Stripped binaries, stamped with the pinned Kubernetes release as upstream's
  # hack/lib/version.sh does (otherwise they report v0.0.0-master).
  local v major minor pkg flags="-s -w"
  v="$(cd "$HERE" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"
  IFS=. read -r major minor _ <<<"${v#v}"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    flags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "$flags"
}

cmd_build() {
  command -v go >/dev/null || die "Go not found: install Go >= 1.22 (https://go.dev/dl/) and rerun"
  mkdir -p "$BIN"
  # Concurrent test sessions: one builds, the others wait and find it done.
  exec 9>"$BIN/.build.lock"
  flock 9
  local stamp missing=0 t
  stamp="$(source_stamp)"
  for t in "${TOOLS[@]}"; do [[ -x "$BIN/$t" ]] || missing=1; done
  if [[ $missing == 0 && "$(cat "$BIN/.stamp" 2>/dev/null)" == "$stamp" ]]; then
    log "binaries up to date in $BIN"
    return 0
  fi
  local start=$SECONDS ldflags
  ldflags="$(build_ldflags)"
  log "building ${TOOLS[*]} into $BIN (GOCACHE=$(go env GOCACHE))"
  # One `go build` for all four commands so shared packages compile once.
  (cd "$HERE" && GOFLAGS="${GOFLAGS:-} -mod=mod" CGO_ENABLED=0 \
    go build -trimpath -ldflags="$ldflags" -o "$BIN/" \
      ./cmd/etcd ./cmd/kube-apiserver ./cmd/kube-scheduler sigs.k8s.io/kwok/cmd/kwok)
  echo "$stamp" >"$BIN/.stamp"
  log "build took $((SECONDS - start))s"
  (cd "$BIN" && ls -l "${TOOLS[@]}") >&2
}

# --- start -------------------------------------------------------------------

free_ports() {
  # N distinct free loopback TCP ports (bound then released; the kernel avoids
  # handing them straight back out).
  python3 - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

gen_cert() { # NAME SUBJECT EXTENSIONS: key + certificate signed by the test CA
  local name=$1 subj=$2 ext=$3
  openssl req -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -out "$PKI/$name.csr" \
    -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -CAcreateserial -out "$PKI/$name.crt" -days 3650 -extfile <(printf '%b' "$ext") 2>/dev/null
  rm -f "$PKI/$name.csr"
}

init_dir() { # first start in DIR: ports, certificates, service-account key, kubeconfig
  local ports
  read -r -a ports <<<"$(free_ports 5)"
  mkdir -p "$PKI" "$DIR/kwok-home"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -days 3650 -subj "/CN=jobsched-testenv-ca" 2>/dev/null
  gen_cert apiserver "/CN=kube-apiserver" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature,keyEncipherment"
  # O=system:masters: cluster-admin through RBAC's bootstrap binding.
  gen_cert admin "/O=system:masters/CN=jobsched-testenv-admin" \
    "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature,keyEncipherment"
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  cat >"$DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://127.0.0.1:${ports[2]}
    certificate-authority: $PKI/ca.crt
users:
- name: admin
  user:
    client-certificate: $PKI/admin.crt
    client-key: $PKI/admin.key
contexts:
- name: testenv
  context: {cluster: testenv, user: admin}
current-context: testenv
EOF
  # Written last: its presence marks a complete DIR.
  printf 'ETCD_PORT=%s\nETCD_PEER_PORT=%s\nAPISERVER_PORT=%s\nKWOK_PORT=%s\nSCHEDULER_PORT=%s\n' "${ports[@]}" \
    >"$DIR/testenv.env"
}

component_args() { # COMPONENT -> argv in ARGS
  case $1 in
    etcd) ARGS=(
      --name=testenv --data-dir="$DIR/etcd-data"
      --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT"
      --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT"
      --initial-cluster="testenv=http://127.0.0.1:$ETCD_PEER_PORT"
      --unsafe-no-fsync=true --log-level=warn
      --quota-backend-bytes=2147483648 --auto-compaction-retention=5m
    ) ;;
    kube-apiserver) ARGS=(
      --etcd-servers="http://127.0.0.1:$ETCD_PORT"
      --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT"
      --cert-dir="$PKI" --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key"
      --client-ca-file="$PKI/ca.crt"
      --service-account-issuer=https://kubernetes.default.svc.cluster.local
      --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key"
      --service-cluster-ip-range=10.96.0.0/16
      --authorization-mode=RBAC
      # No controller-manager here: ServiceAccount admission would reject pods while
      # no "default" ServiceAccount exists, and TaintNodesByCondition would leave a
      # not-ready taint on every node that only the node-lifecycle controller removes.
      --disable-admission-plugins=ServiceAccount,TaintNodesByCondition
      --profiling=false --v=0
    ) ;;
    kwok) ARGS=(
      --kubeconfig="$DIR/kubeconfig"
      --config="$HERE/stages/node.yaml" --config="$HERE/stages/pod.yaml"
      --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
      --node-ip=10.244.0.1 --cidr=10.244.0.0/16
      --server-address="127.0.0.1:$KWOK_PORT"
    ) ;;
    kube-scheduler) ARGS=( # the default scheduler, for side-by-side benchmarks
      --kubeconfig="$DIR/kubeconfig"
      --authentication-kubeconfig="$DIR/kubeconfig" --authorization-kubeconfig="$DIR/kubeconfig"
      --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --cert-dir="$DIR/scheduler-certs"
      --leader-elect=false --profiling=false
    ) ;;
  esac
}

is_running() { # COMPONENT: its pid file names a live process running our binary
  local pid exe
  pid="$(cat "$DIR/$1.pid" 2>/dev/null)" || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
  [[ "${exe% (deleted)}" == "$BIN/$1" ]]
}

probe() { # COMPONENT: one readiness check
  case $1 in
    etcd) curl -sf "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"' ;;
    kube-apiserver) curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
      "https://127.0.0.1:$APISERVER_PORT/readyz" >/dev/null ;;
    kwok) curl -sf "http://127.0.0.1:$KWOK_PORT/healthz" >/dev/null ;;
    kube-scheduler) curl -sfk "https://127.0.0.1:$SCHEDULER_PORT/readyz" >/dev/null ;;
  esac
}

start_component() {
  local c=$1 t0=$SECONDS
  component_args "$c"
  if [[ $c == kwok ]]; then
    HOME="$DIR/kwok-home" "$BIN/$c" "${ARGS[@]}" </dev/null >>"$DIR/$c.log" 2>&1 &
  else
    "$BIN/$c" "${ARGS[@]}" </dev/null >>"$DIR/$c.log" 2>&1 &
  fi
  echo $! >"$DIR/$c.pid"
  until probe "$c"; do
    if ! is_running "$c"; then
      tail -n 30 "$DIR/$c.log" >&2
      die "$c exited during start-up (log: $DIR/$c.log)"
    fi
    ((SECONDS - t0 < READY_TIMEOUT)) || die "$c not ready after ${READY_TIMEOUT}s (log: $DIR/$c.log)"
    sleep 0.2
  done
  log "$c ready in $((SECONDS - t0))s (pid $(cat "$DIR/$c.pid"))"
}

use_dir() { # DIR [create]
  [[ -n "${1:-}" ]] || die "missing DIR argument"
  [[ -z "${2:-}" ]] || mkdir -p "$1"
  [[ -d "$1" ]] || die "no such directory: $1"
  DIR="$(cd "$1" && pwd)"
  PKI="$DIR/pki"
}

check_component() {
  [[ " ${COMPONENTS[*]} " == *" $1 "* ]] || die "unknown component '$1' (one of: ${COMPONENTS[*]})"
}

cmd_start() {
  use_dir "${1:-}" create
  local c want=("${DEFAULT_COMPONENTS[@]}")
  if [[ -n "${2:-}" ]]; then check_component "$2"; want=("$2"); fi
  for c in "${TOOLS[@]}"; do
    [[ -x "$BIN/$c" ]] || die "$BIN/$c missing: run tools/k8s-testenv/testenv.sh build"
  done
  command -v openssl >/dev/null || die "openssl not found"
  command -v curl >/dev/null || die "curl not found"
  [[ -f "$DIR/testenv.env" ]] || init_dir
  # shellcheck disable=SC1091
  source "$DIR/testenv.env"
  for c in "${want[@]}"; do
    if is_running "$c"; then log "$c already running"; else start_component "$c"; fi
  done
}

# --- stop / env ----------------------------------------------------------------

stop_component() {
  local c=$1 pid i
  if ! is_running "$c"; then rm -f "$DIR/$c.pid"; return 0; fi
  pid="$(cat "$DIR/$c.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do # 10 s grace
    is_running "$c" || break
    sleep 0.1
  done
  if is_running "$c"; then
    log "$c (pid $pid) ignored SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while is_running "$c"; do sleep 0.1; done
  fi
  rm -f "$DIR/$c.pid"
  log "$c stopped"
}

cmd_stop() {
  use_dir "${1:-}"
  local c i want="${2:-}"
  if [[ -n $want ]]; then
    check_component "$want"
    stop_component "$want"
    return
  fi
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do stop_component "${COMPONENTS[i]}"; done
}

cmd_env() {
  use_dir "${1:-}"
  [[ -f "$DIR/kubeconfig" ]] || die "no kubeconfig in $DIR: run testenv.sh start $DIR"
  printf 'export KUBECONFIG=%q\n' "$DIR/kubeconfig"
}

main() {
  local sub="${1:-}"
  shift || true
  case "$sub" in
    build) cmd_build ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    env) cmd_env "$@" ;;
    *) die "usage: testenv.sh build | start DIR [COMPONENT] | stop DIR [COMPONENT] | env DIR" ;;
  esac
}

main "$@"
