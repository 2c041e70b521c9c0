#!/usr/bin/env bash
# The real test stack: a control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) and one real node
# (containerd + runc, kubelet, kube-proxy, CNI bridge, CoreDNS), the test CSI driver with its sidecars, our images
# imported into the node's containerd, and CloudNativePG's operator (hack/cnpg/) with a PostgreSQL image of Debian's. Everything runs on this machine; pod traffic stays on a bridge of our own.
#   hack/node/stack.sh up       builds what is missing, starts everything (idempotent), prints the kubeconfig path
#   hack/node/stack.sh build    only builds what is missing (make test starts it early, beside the first test phases)
#   hack/node/stack.sh down     removes everything it or kubelet created (idempotent, also after SIGKILL of everything)
#   hack/node/stack.sh status   exits 0 when the stack is up and the node Ready
#   hack/node/stack.sh env      prints the stack's settings as shell assignments
# Layout: docs/stack.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

STACK_DIR=${STACK_DIR:-/var/lib/cnpg-ds-stack}
# Host state recorded before the first start and restored by down (outside STACK_DIR so a half-removed dir keeps it).
HOST_STATE=${HOST_STATE:-/var/lib/cnpg-ds-stack.host-state}
NODE_NAME=cnpg-ds-node
BRIDGE=cnpgds0
POD_CIDR=10.77.0.0/24
NODE_IP=10.77.0.1
SERVICE_CIDR=10.96.0.0/24
API_SERVICE_IP=10.96.0.1
API_PORT=6443
ETCD_CLIENT_PORT=23791
ETCD_PEER_PORT=23792
CGROUP_ROOT=cnpg-ds-stack
KUBELET_ROOT=/var/lib/kubelet
CNI_BIN=/usr/lib/cni
KUBECONFIG_PATH=$STACK_DIR/kubeconfig
CONTAINERD_SOCK=$STACK_DIR/containerd/containerd.sock
# Sysctls kubelet and kube-proxy change, and the ones this stack sets: recorded before start, restored by down.
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes
  net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
  net.bridge.bridge-nf-call-ip6tables net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established
  net.netfilter.nf_conntrack_tcp_timeout_close_wait net.ipv6.conf.all.forwarding)
# Host paths kubelet creates; removed by down only when they were not there before.
HOST_PATHS=("$KUBELET_ROOT" /var/log/pods /var/log/containers)

log() { echo "stack: $*" >&2; }
die() { echo "stack: $*" >&2; exit 1; }

kubectl_() { "$CP_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# ---------------------------------------------------------------------------------------------------------- set-up
ensure_packages() {
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x "$CNI_BIN/bridge" ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v conntrack >/dev/null || missing+=(conntrack)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
}

build_all() {
  mkdir -p "$STACK_DIR/logs"
  [ -x "$repo/hack/images/build.sh" ] || die "hack/images/build.sh is missing"
  PAUSE_IMAGE=$("$repo/hack/images/build.sh" --names pause | awk '{print $2}')
  [ -n "$PAUSE_IMAGE" ] || die "no pause image name from hack/images/build.sh --names pause"
  log "building what is missing: images (log: $STACK_DIR/logs/images.log), control plane, node, CSI driver"
  # The images (Debian packages, npm, and CloudNativePG's operator from its Go module) build beside the Go builds.
  "$repo/hack/images/build.sh" all >>"$STACK_DIR/logs/images.log" 2>&1 &
  local images=$!
  CP_BIN=$("$repo/hack/controlplane/build.sh" | tail -1)
  NODE_BIN=$("$here/build.sh" | tail -1)
  CSI_BIN=$("$repo/hack/csi/build.sh" | tail -1)
  wait $images || { tail -n 20 "$STACK_DIR/logs/images.log" >&2; die "building images failed"; }
}

record_host_state() {
  [ -s "$HOST_STATE" ] && return 0
  local s p
  {
    for s in "${SYSCTLS[@]}"; do
      [ -e "/proc/sys/${s//.//}" ] && echo "sysctl $s $(cat "/proc/sys/${s//.//}" | tr '\t' ' ')"
    done
    for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] && echo "existed $p"; done
  } >"$HOST_STATE.partial"
  mv "$HOST_STATE.partial" "$HOST_STATE"
}

# issue <name> <subject> <ext lines...>: a certificate signed by the stack's CA.
issue() {
  local name=$1 subject=$2; shift 2
  local d=$STACK_DIR/pki
  printf '%s\n' basicConstraints=critical,CA:FALSE keyUsage=critical,digitalSignature,keyEncipherment "$@" >"$d/$name.ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/$name.key" -out "$d/$name.csr" -subj "$subject" 2>/dev/null
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -out "$d/$name.crt" -days 30 \
    -extfile "$d/$name.ext" 2>/dev/null
}

make_pki() {
  local d=$STACK_DIR/pki
  [ -s "$d/done" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 30 \
    -subj /CN=cnpg-ds-stack-ca -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign,digitalSignature 2>/dev/null
  issue apiserver /CN=kube-apiserver extendedKeyUsage=serverAuth \
    "subjectAltName=IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  issue admin /CN=admin/O=system:masters extendedKeyUsage=clientAuth
  issue apiserver-kubelet-client /CN=kube-apiserver-kubelet-client/O=system:masters extendedKeyUsage=clientAuth
  issue kubelet "/CN=system:node:$NODE_NAME/O=system:nodes" extendedKeyUsage=clientAuth
  issue kubelet-serving "/CN=system:node:$NODE_NAME" extendedKeyUsage=serverAuth "subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
  issue kube-proxy /CN=system:kube-proxy extendedKeyUsage=clientAuth
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/sa.key" 2>/dev/null
  openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub"
  echo ok >"$d/done"
}

# kubeconfig <file> <cert name>
kubeconfig() {
  local d=$STACK_DIR/pki
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
current-context: cnpg-ds-stack
clusters:
- name: cnpg-ds-stack
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority-data: $(base64 -w0 "$d/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$d/$2.crt")
    client-key-data: $(base64 -w0 "$d/$2.key")
contexts:
- name: cnpg-ds-stack
  context:
    cluster: cnpg-ds-stack
    user: $2
EOF
}

set_sysctl() { [ -e "/proc/sys/${1//.//}" ] && echo "$2" >"/proc/sys/${1//.//}" 2>/dev/null || true; }

setup_network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
  fi
  ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  set_sysctl net.ipv4.ip_forward 1
  set_sysctl net.bridge.bridge-nf-call-iptables 1
  # Pod traffic never leaves this machine: nothing from the pod network is forwarded anywhere but the bridge.
  iptables -w -N CNPG-DS-ISOLATE 2>/dev/null || iptables -w -F CNPG-DS-ISOLATE
  iptables -w -A CNPG-DS-ISOLATE -o "$BRIDGE" -j RETURN
  iptables -w -A CNPG-DS-ISOLATE -s "$POD_CIDR" -j DROP
  iptables -w -C FORWARD -j CNPG-DS-ISOLATE 2>/dev/null || iptables -w -I FORWARD 1 -j CNPG-DS-ISOLATE
}

# start <name> <binary> <args...>: a daemon in a session of its own, its output in <name>.log, its pid in pids/<name>.
start() {
  local name=$1; shift
  mkdir -p "$STACK_DIR/pids" "$STACK_DIR/logs"
  setsid "$@" >>"$STACK_DIR/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STACK_DIR/pids/$name"
}

running() { local p; p=$(cat "$STACK_DIR/pids/$1" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

# wait_for <what> <seconds> <name of process to watch> <command...>
wait_for() {
  local what=$1 seconds=$2 proc=$3; shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$proc" ] && ! running "$proc"; then
      tail -n 30 "$STACK_DIR/logs/$proc.log" >&2 || true
      die "$proc exited while waiting for $what"
    fi
    if [ $SECONDS -ge $deadline ]; then
      [ -n "$proc" ] && tail -n 30 "$STACK_DIR/logs/$proc.log" >&2
      die "$what not ready after ${seconds}s"
    fi
    sleep 0.5
  done
}

api_ready() {
  curl -sf --cacert "$STACK_DIR/pki/ca.crt" --cert "$STACK_DIR/pki/admin.crt" --key "$STACK_DIR/pki/admin.key" \
    "https://$NODE_IP:$API_PORT/readyz" >/dev/null
}

start_control_plane() {
  local d=$STACK_DIR/pki
  running etcd || start etcd "$CP_BIN/etcd" --name=default --data-dir="$STACK_DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="default=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --log-level=warn
  wait_for etcd 30 etcd curl -sf "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
  running kube-apiserver || start kube-apiserver "$CP_BIN/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" --cert-dir="$d" \
    --tls-cert-file="$d/apiserver.crt" --tls-private-key-file="$d/apiserver.key" \
    --secure-port=$API_PORT --bind-address=$NODE_IP --advertise-address=$NODE_IP \
    --service-cluster-ip-range=$SERVICE_CIDR --allow-privileged=true --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction --client-ca-file="$d/ca.crt" \
    --kubelet-client-certificate="$d/apiserver-kubelet-client.crt" --kubelet-client-key="$d/apiserver-kubelet-client.key" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$d/sa.pub" --service-account-signing-key-file="$d/sa.key" \
    --api-audiences=https://kubernetes.default.svc.cluster.local --enable-priority-and-fairness=false --v=1
  wait_for kube-apiserver 120 kube-apiserver api_ready
  running kube-controller-manager || start kube-controller-manager "$CP_BIN/kube-controller-manager" \
    --kubeconfig="$KUBECONFIG_PATH" --service-account-private-key-file="$d/sa.key" --root-ca-file="$d/ca.crt" \
    --cluster-signing-cert-file="$d/ca.crt" --cluster-signing-key-file="$d/ca.key" \
    --leader-elect=false --secure-port=0 --allocate-node-cidrs=false --v=1
  running kube-scheduler || start kube-scheduler "$NODE_BIN/kube-scheduler" \
    --kubeconfig="$KUBECONFIG_PATH" --authentication-kubeconfig="$KUBECONFIG_PATH" --authorization-kubeconfig="$KUBECONFIG_PATH" \
    --leader-elect=false --bind-address=127.0.0.1 --secure-port=0 --v=1
}

write_node_config() {
  local c=$STACK_DIR/config
  mkdir -p "$c" "$STACK_DIR/cni/net.d" "$STACK_DIR/containerd"
  cat >"$c/containerd.toml" <<EOF
version = 2
root = "$STACK_DIR/containerd/root"
state = "$STACK_DIR/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$CONTAINERD_SOCK"
[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$STACK_DIR/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE: without this every sandbox fails ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Pod network namespaces under our state dir, not /run/netns: nothing of ours mixes with the host's.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$STACK_DIR/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$STACK_DIR/cni/net.d"
EOF
  cat >"$STACK_DIR/cni/net.d/10-cnpg-ds.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "cnpg-ds",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STACK_DIR/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR", "gateway": "$NODE_IP" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
  printf 'nameserver %s\n' "$NODE_IP" >"$c/resolv.conf"
  cat >"$c/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine: cgroup v1, no systemd, swap allowed.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $STACK_DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $STACK_DIR/pki/kubelet-serving.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $STACK_DIR/pki/ca.crt
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: $c/resolv.conf
# Never evict or garbage-collect images on a shared test machine.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
  cat >"$c/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $STACK_DIR/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
iptables:
  masqueradeAll: true
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  cat >"$c/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    health 127.0.0.1:18180
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_PATH cnpg-ds-stack
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
}

start_node() {
  write_node_config
  mkdir -p "$STACK_DIR/containerd/root" "$STACK_DIR/containerd/state" "$STACK_DIR/runc"
  running containerd || start containerd containerd --config "$STACK_DIR/config/containerd.toml"
  wait_for containerd 30 containerd ctr --address "$CONTAINERD_SOCK" version
  import_images
  # kubelet's root must be a shared mount: the agent mounts it with HostToContainer propagation.
  mkdir -p "$KUBELET_ROOT"
  if ! findmnt -n -M "$KUBELET_ROOT" >/dev/null; then mount --bind "$KUBELET_ROOT" "$KUBELET_ROOT"; fi
  mount --make-rshared "$KUBELET_ROOT"
  local cg
  for cg in /sys/fs/cgroup/*/; do
    case "$cg" in */unified/) continue ;; esac
    mkdir -p "$cg$CGROUP_ROOT"
  done
  # A new cpuset cgroup has no CPUs or memory nodes: give ours the root's, or nothing can join it.
  local f
  for f in cpus mems; do
    [ -s "/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.$f" ] && [ -n "$(tr -d '\n' <"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.$f")" ] ||
      cat "/sys/fs/cgroup/cpuset/cpuset.$f" >"/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.$f"
  done
  running kubelet || start kubelet "$NODE_BIN/kubelet" --config="$STACK_DIR/config/kubelet.yaml" \
    --kubeconfig="$STACK_DIR/kubelet.kubeconfig" --hostname-override=$NODE_NAME --node-ip=$NODE_IP \
    --root-dir="$KUBELET_ROOT" --cert-dir="$STACK_DIR/pki/kubelet" --v=1
  running kube-proxy || start kube-proxy "$NODE_BIN/kube-proxy" --config="$STACK_DIR/config/kube-proxy.yaml" --v=1
  running coredns || start coredns "$NODE_BIN/coredns" -conf "$STACK_DIR/config/Corefile"
  wait_for "node $NODE_NAME Ready" 120 kubelet node_ready
  wait_for coredns 30 coredns curl -sf http://127.0.0.1:18181/ready
}

node_ready() {
  [ "$(kubectl_ get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# Our images (agent, controller, pause, workload): built by hack/images/build.sh (cached by their inputs), imported into
# the node's containerd; they go with containerd's root on down.
PAUSE_IMAGE=""
import_images() {
  "$repo/hack/images/import.sh" --address "$CONTAINERD_SOCK" all >>"$STACK_DIR/logs/images.log" 2>&1 ||
    { tail -n 20 "$STACK_DIR/logs/images.log" >&2; die "importing images failed"; }
}

start_csi() {
  [ -n "$CSI_BIN" ] && [ -x "$repo/hack/csi/launch.sh" ] || die "the test CSI driver (hack/csi/) is missing"
  log "starting the test CSI driver and its sidecars"
  KUBECTL="$CP_BIN/kubectl" "$repo/hack/csi/launch.sh" start --kubeconfig "$KUBECONFIG_PATH" --kubelet-root "$KUBELET_ROOT" \
    --state "$STACK_DIR/csi" --bin "$CSI_BIN" --node-id "$NODE_NAME" >>"$STACK_DIR/logs/csi.log" 2>&1 || die "CSI driver failed to start ($STACK_DIR/logs/csi.log)"
}

# CloudNativePG from its own release manifest, with the operator and PostgreSQL images built here (hack/cnpg/).
install_cnpg() {
  log "installing CloudNativePG (log: $STACK_DIR/logs/cnpg.log)"
  KUBECTL="$CP_BIN/kubectl" "$repo/hack/cnpg/install.sh" --kubeconfig "$KUBECONFIG_PATH" >>"$STACK_DIR/logs/cnpg.log" 2>&1 ||
    { tail -n 30 "$STACK_DIR/logs/cnpg.log" >&2; die "installing CloudNativePG failed"; }
}

up() {
  [ "$(id -u)" = 0 ] || die "run as root (it starts kubelet and containerd)"
  if [ -s "$STACK_DIR/up" ] && status >/dev/null 2>&1; then
    log "already up"
    report
    return 0
  fi
  down >/dev/null 2>&1 || true
  local t0=$SECONDS
  ensure_packages
  build_all
  record_host_state
  make_pki
  kubeconfig "$KUBECONFIG_PATH" admin
  kubeconfig "$STACK_DIR/kubelet.kubeconfig" kubelet
  kubeconfig "$STACK_DIR/kube-proxy.kubeconfig" kube-proxy
  setup_network
  log "starting the control plane"
  start_control_plane
  log "starting the node"
  start_node
  start_csi
  install_cnpg
  date +%s >"$STACK_DIR/up"
  log "up in $((SECONDS - t0))s"
  report
}

report() {
  log "node $NODE_NAME Ready; kube-apiserver at https://$NODE_IP:$API_PORT; logs in $STACK_DIR/logs"
  log "try: kubectl --kubeconfig $KUBECONFIG_PATH get nodes   (kubectl: $CP_BIN/kubectl; stop with: make stack-down)"
  echo "$KUBECONFIG_PATH"
}

status() {
  # Before the control plane's path: on a cold machine, asking whether the stack is up must not build it.
  [ -s "$STACK_DIR/up" ] || return 1
  CP_BIN=${CP_BIN:-$("$repo/hack/controlplane/build.sh" | tail -1)}
  local p
  for p in etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns; do
    running "$p" || { echo "stack: $p is not running" >&2; return 1; }
  done
  node_ready
}

# ------------------------------------------------------------------------------------------------------- tear-down
# Every process of ours names STACK_DIR on its command line (daemons, containerd's shims); containers live in our
# cgroup root. Both are found again after a SIGKILL of everything, without the pid files.
stack_pids() {
  pgrep -f -- "$STACK_DIR/" 2>/dev/null | grep -vx "$$" || true
  cat /sys/fs/cgroup/*/"$CGROUP_ROOT"/cgroup.procs /sys/fs/cgroup/*/"$CGROUP_ROOT"/*/cgroup.procs 2>/dev/null || true
  find /sys/fs/cgroup/*/"$CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null || true
}

kill_all() {
  local round pids
  # kubelet first, so it does not restart what goes next.
  pkill -KILL -f -- "--config=$STACK_DIR/config/kubelet.yaml" 2>/dev/null || true
  for round in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(stack_pids | sort -u | grep -v "^$$\$" || true)
    [ -z "$pids" ] && return 0
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.3
  done
  pids=$(stack_pids | sort -u)
  [ -z "$pids" ] || log "processes left: $pids"
}

unmount_under() {
  local dir=$1 m
  [ -e "$dir" ] || return 0
  # Deepest first; lazily, so that a busy mount does not stop the rest.
  for m in $(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done
}

remove_cgroups() {
  local cg
  for cg in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [ -d "$cg" ] || continue
    find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
    if [ -d "$cg" ]; then log "cgroup left: $cg"; fi
  done
}

# Chains kube-proxy, kubelet, the CNI plugins and this script create: KUBE-*, CNI-*, CNPG-DS-*.
remove_chains() {
  local ipt table rule chain
  for ipt in iptables ip6tables; do
    command -v $ipt >/dev/null || continue
    for table in filter nat mangle raw; do
      $ipt -w -t $table -S >/dev/null 2>&1 || continue
      $ipt -w -t $table -S | grep -E -- '^-A .* -j (KUBE-|CNI-|CNPG-DS-)' | grep -vE '^-A (KUBE-|CNI-|CNPG-DS-)' |
        while read -r rule; do
          # shellcheck disable=SC2086
          eval "$ipt -w -t $table ${rule/-A/-D}" 2>/dev/null || true
        done || true
      for chain in $($ipt -w -t $table -S | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-|CNPG-DS-)/ {print $2}'); do
        $ipt -w -t $table -F "$chain" 2>/dev/null || true
      done
      for chain in $($ipt -w -t $table -S | awk '$1 == "-N" && $2 ~ /^(KUBE-|CNI-|CNPG-DS-)/ {print $2}'); do
        $ipt -w -t $table -X "$chain" 2>/dev/null || true
      done
    done
  done
}

restore_host_state() {
  [ -s "$HOST_STATE" ] || return 0
  local kind a b
  while read -r kind a b; do
    [ "$kind" = sysctl ] && set_sysctl "$a" "$b"
  done <"$HOST_STATE"
  local p
  for p in "${HOST_PATHS[@]}"; do
    grep -qx "existed $p" "$HOST_STATE" && continue
    [ -e "$p" ] && rm -rf --one-file-system "$p"
  done
  rm -f "$HOST_STATE"
}

down() {
  [ "$(id -u)" = 0 ] || die "run as root"
  [ -x "$repo/hack/csi/launch.sh" ] && "$repo/hack/csi/launch.sh" stop --state "$STACK_DIR/csi" >/dev/null 2>&1 || true
  kill_all
  unmount_under "$KUBELET_ROOT"
  unmount_under "$STACK_DIR"
  remove_cgroups
  ip link del "$BRIDGE" 2>/dev/null || true
  # veth ends the CNI bridge plugin left in the host namespace (their pod side died with the netns).
  local v
  for v in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    if ip -d link show "$v" 2>/dev/null | grep -q "master $BRIDGE"; then ip link del "$v" 2>/dev/null || true; fi
  done
  remove_chains
  restore_host_state
  rm -rf --one-file-system "$STACK_DIR"
  log "down"
}

settings() {
  cat <<EOF
STACK_DIR=$STACK_DIR
KUBECONFIG_PATH=$KUBECONFIG_PATH
NODE_NAME=$NODE_NAME
NODE_IP=$NODE_IP
BRIDGE=$BRIDGE
POD_CIDR=$POD_CIDR
SERVICE_CIDR=$SERVICE_CIDR
CONTAINERD_SOCK=$CONTAINERD_SOCK
KUBELET_ROOT=$KUBELET_ROOT
CGROUP_ROOT=$CGROUP_ROOT
EOF
}

case "${1:-}" in
  up) up ;;
  build) ensure_packages; build_all; log "built: control plane, node, CSI driver, images" ;;
  down) down ;;
  status) status ;;
  env) settings ;;
  *) echo "usage: hack/node/stack.sh up|build|down|status|env" >&2; exit 2 ;;
esac
