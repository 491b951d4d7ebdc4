#!/usr/bin/env bash
# A throwaway Kubernetes control plane (etcd + kube-apiserver + kube-controller-manager) for the
# operator's integration tests and demo, with no Docker.
#
#   hack/cluster.sh up       start one (or reuse the running one, or a reachable $KUBECONFIG cluster)
#   hack/cluster.sh down     stop exactly what `up` started (PID files) and remove its state
#   hack/cluster.sh status   say what is running
#   hack/cluster.sh env      print `export KUBECONFIG=...` for eval
#   hack/cluster.sh build    only build and cache the binaries
#
# Options: --kubeconfig PATH (use that cluster if reachable), --dir DIR (state directory, so two
# control planes can run side by side; default $DAO_CLUSTER_DIR or ~/.cache/.../cluster).
#
# kube-apiserver and kube-controller-manager v1.20.2 are built once from Debian's `kubernetes`
# source package with Debian's Go and cached under ~/.cache/databricks-account-operator/bin.
# Everything binds to 127.0.0.1 only: this is old code and must never face a network.
set -euo pipefail

KUBE_DEB_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
KUBE_VERSION="v1.20.2"
CACHE="${DAO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/databricks-account-operator}"
BIN="$CACHE/bin/$KUBE_VERSION"
STATE="${DAO_CLUSTER_DIR:-$CACHE/cluster}"
KUBECONFIG_ARG=""
APT_PACKAGES=(etcd-server golang-go dpkg-dev make rsync curl openssl golang-github-modern-go-reflect2-dev)

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { printf '[cluster] error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

# ---------------------------------------------------------------------------------------------
# Packages and the cached build

ensure_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing Debian packages: ${missing[*]} (install them with apt-get as root)"
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

build_binaries() {
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; then
    return 0
  fi
  ensure_packages
  local work="$CACHE/build"
  local started=$SECONDS
  log "building kube-apiserver and kube-controller-manager $KUBE_VERSION once (about 9 minutes on 2 cores)"
  mkdir -p "$work/apt/parts" "$work/apt/lists/partial"
  cat >"$work/apt/parts/src.sources" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  local aptopts=(-o "Dir::Etc::SourceParts=$work/apt/parts" -o Dir::Etc::SourceList=/dev/null
    -o "Dir::State::Lists=$work/apt/lists" -o APT::Sandbox::User=root)
  local src="$work/kubernetes-src"
  if [ ! -f "$src/.unpacked" ]; then
    rm -rf "$src"
    (
      cd "$work"
      apt-get "${aptopts[@]}" -qq update >&2
      apt-get "${aptopts[@]}" -qq source --download-only "kubernetes=$KUBE_DEB_VERSION" >&2
      dpkg-source -x kubernetes_*.dsc kubernetes-src >&2
    )
    # The vendored reflect2 1.0.1 crashes the server under Go >= 1.18 on the first custom
    # resource write; Debian ships 1.0.2.
    rm -rf "$src/vendor/github.com/modern-go/reflect2"
    cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"
    touch "$src/.unpacked"
  fi
  local gopath="$work/gopath"
  mkdir -p "$gopath/src/k8s.io"
  ln -sfn "$src" "$gopath/src/k8s.io/kubernetes"
  export GOPATH="$gopath" GO111MODULE=off GOPROXY=off CGO_ENABLED=0 GOFLAGS="" GOCACHE="$work/gocache"
  (
    cd "$gopath/src/k8s.io/kubernetes"
    if [ ! -f pkg/generated/openapi/zz_generated.openapi.go ]; then
      log "generating OpenAPI definitions"
      make gen_openapi >"$work/gen_openapi.log" 2>&1 || { tail -20 "$work/gen_openapi.log" >&2; die "make gen_openapi failed (log: $work/gen_openapi.log)"; }
    fi
    local v=k8s.io/kubernetes/vendor/k8s.io
    local ldflags="-s -w"
    for p in component-base/version client-go/pkg/version; do
      ldflags+=" -X $v/$p.gitVersion=$KUBE_VERSION -X $v/$p.gitMajor=1 -X $v/$p.gitMinor=20 -X $v/$p.gitTreeState=clean"
    done
    mkdir -p "$work/out"
    for cmd in kube-apiserver kube-controller-manager; do
      log "go build $cmd"
      go build -trimpath -ldflags "$ldflags" -o "$work/out/$cmd" "./cmd/$cmd" >"$work/build-$cmd.log" 2>&1 ||
        { tail -20 "$work/build-$cmd.log" >&2; die "go build $cmd failed (log: $work/build-$cmd.log)"; }
    done
  )
  mkdir -p "$BIN"
  install -m 0755 "$work/out/kube-apiserver" "$work/out/kube-controller-manager" "$BIN/"
  log "built in $((SECONDS - started)) s, cached in $BIN"
}

# ---------------------------------------------------------------------------------------------
# State

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

reachable() { # kubeconfig
  kubectl --kubeconfig "$1" --request-timeout=5s get --raw /readyz >/dev/null 2>&1
}

running_here() {
  pid_alive "$STATE/etcd.pid" && pid_alive "$STATE/kube-apiserver.pid" &&
    pid_alive "$STATE/kube-controller-manager.pid" && [ -f "$STATE/kubeconfig" ] && reachable "$STATE/kubeconfig"
}

external_kubeconfig() {
  local k="${KUBECONFIG_ARG:-${KUBECONFIG:-}}"
  # Our own kubeconfig exported by `env` is not an external cluster.
  if [ -n "$k" ] && [ "$k" != "$STATE/kubeconfig" ] && [ -f "${k%%:*}" ] && reachable "$k"; then
    printf '%s' "$k"
  fi
}

free_ports() { # n
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

make_certs() {
  local d="$STATE/pki"
  mkdir -p "$d"
  (
    cd "$d"
    openssl genrsa -out ca.key 2048 2>/dev/null
    openssl req -x509 -new -nodes -key ca.key -subj "/CN=databricks-account-operator-test-ca" -days 3650 -out ca.crt 2>/dev/null
    cat >server.ext <<'EOF'
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc
extendedKeyUsage=serverAuth
EOF
    openssl genrsa -out server.key 2048 2>/dev/null
    openssl req -new -key server.key -subj "/CN=kube-apiserver" -out server.csr 2>/dev/null
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile server.ext -out server.crt 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    openssl genrsa -out admin.key 2048 2>/dev/null
    openssl req -new -key admin.key -subj "/O=system:masters/CN=admin" -out admin.csr 2>/dev/null
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out admin.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    chmod 600 ./*.key
  )
}

write_kubeconfig() { # port
  local d="$STATE/pki"
  cat >"$STATE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$1
    certificate-authority-data: $(base64 -w0 <"$d/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 <"$d/admin.crt")
    client-key-data: $(base64 -w0 <"$d/admin.key")
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
EOF
  chmod 600 "$STATE/kubeconfig"
}

start() { # name logfile cmd...
  local name=$1 logf=$2
  shift 2
  setsid "$@" >"$logf" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

wait_for() { # name pidfile logfile seconds check-cmd...
  local name=$1 pidf=$2 logf=$3 secs=$4
  shift 4
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidf"; then
      log "$name exited during start-up; last lines of $logf:"
      tail -25 "$logf" >&2
      stop_all
      die "$name did not start"
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "$name not ready after ${secs}s; last lines of $logf:"
      tail -25 "$logf" >&2
      stop_all
      die "$name did not become ready"
    fi
    sleep 0.5
  done
}

stop_all() {
  local name pidf pid
  for name in kube-controller-manager kube-apiserver etcd; do
    pidf="$STATE/$name.pid"
    [ -f "$pidf" ] || continue
    pid=$(cat "$pidf")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidf"
  done
}

# ---------------------------------------------------------------------------------------------
# Commands

cmd_up() {
  local ext
  ext=$(external_kubeconfig)
  if [ -n "$ext" ]; then
    log "using the reachable cluster of $ext; starting nothing"
    return 0
  fi
  mkdir -p "$STATE"
  if running_here; then
    log "control plane already running ($(server_url)); reusing it"
    return 0
  fi
  stop_all # leftovers of a crashed run
  build_binaries
  ensure_packages
  local started=$SECONDS
  rm -rf "$STATE/etcd-data" "$STATE/pki"
  make_certs
  local ports etcd_port peer_port api_port kcm_port
  ports=$(free_ports 4)
  read -r etcd_port peer_port api_port kcm_port <<<"$ports"
  local etcd_url="http://127.0.0.1:$etcd_port"
  start etcd "$STATE/etcd.log" etcd --name default --data-dir "$STATE/etcd-data" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn
  wait_for etcd "$STATE/etcd.pid" "$STATE/etcd.log" 30 curl -fsS "$etcd_url/health"

  local p="$STATE/pki"
  start kube-apiserver "$STATE/kube-apiserver.log" "$BIN/kube-apiserver" \
    --etcd-servers "$etcd_url" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "$api_port" --insecure-port 0 \
    --tls-cert-file "$p/server.crt" --tls-private-key-file "$p/server.key" --client-ca-file "$p/ca.crt" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.0.0.0/24 --endpoint-reconciler-type none \
    --profiling=false --v 1
  write_kubeconfig "$api_port"
  wait_for kube-apiserver "$STATE/kube-apiserver.pid" "$STATE/kube-apiserver.log" 90 reachable "$STATE/kubeconfig"

  start kube-controller-manager "$STATE/kube-controller-manager.log" "$BIN/kube-controller-manager" \
    --kubeconfig "$STATE/kubeconfig" --authentication-kubeconfig "$STATE/kubeconfig" \
    --authorization-kubeconfig "$STATE/kubeconfig" --leader-elect=false \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --controllers '*' --bind-address 127.0.0.1 --secure-port "$kcm_port" --port 0 \
    --use-service-account-credentials=false --profiling=false --v 1
  wait_for kube-controller-manager "$STATE/kube-controller-manager.pid" "$STATE/kube-controller-manager.log" 60 \
    curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
  # The default namespace and service account appear shortly after start-up.
  wait_for "default namespace" "$STATE/kube-apiserver.pid" "$STATE/kube-apiserver.log" 60 \
    kubectl --kubeconfig "$STATE/kubeconfig" get namespace default
  log "control plane up in $((SECONDS - started)) s at $(server_url) (state: $STATE)"
}

server_url() { sed -n 's/^ *server: //p' "$STATE/kubeconfig" 2>/dev/null | head -1; }

cmd_down() {
  if [ ! -d "$STATE" ]; then
    log "nothing to stop"
    return 0
  fi
  stop_all
  rm -rf "$STATE"
  log "stopped"
}

cmd_status() {
  local ext
  ext=$(external_kubeconfig)
  if [ -n "$ext" ]; then
    echo "external cluster reachable through $ext"
    return 0
  fi
  local any=0 name
  for name in etcd kube-apiserver kube-controller-manager; do
    if pid_alive "$STATE/$name.pid"; then
      local pid rss
      pid=$(cat "$STATE/$name.pid")
      rss=$(awk '/VmRSS/ {print int($2/1024)}' "/proc/$pid/status" 2>/dev/null || echo "?")
      echo "$name: running (pid $pid, ${rss} MiB)"
      any=1
    else
      echo "$name: stopped"
    fi
  done
  if [ $any = 1 ] && running_here; then
    echo "ready at $(server_url); kubeconfig $STATE/kubeconfig"
    return 0
  fi
  return 1
}

cmd_env() {
  local ext
  ext=$(external_kubeconfig)
  if [ -n "$ext" ]; then
    echo "export KUBECONFIG=$ext"
  elif [ -f "$STATE/kubeconfig" ]; then
    echo "export KUBECONFIG=$STATE/kubeconfig"
  else
    die "no control plane: run hack/cluster.sh up"
  fi
}

main() {
  local cmd=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --kubeconfig) KUBECONFIG_ARG=$2; shift 2 ;;
      --kubeconfig=*) KUBECONFIG_ARG=${1#*=}; shift ;;
      --dir) STATE=$2; shift 2 ;;
      --dir=*) STATE=${1#*=}; shift ;;
      -h|--help) usage ;;
      up|down|status|env|build) cmd=$1; shift ;;
      *) usage ;;
    esac
  done
  case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    build) build_binaries ;;
    *) usage ;;
  esac
}

main "$@"
