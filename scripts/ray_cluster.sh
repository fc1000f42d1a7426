#!/usr/bin/env bash
# A real multi-node Ray cluster on this one machine: a head and N worker nodes, each
# its own `ray start` (own raylet, object store and temp dir), for tests and demos.
#
#   scripts/ray_cluster.sh up [--workers N] [--cpus-per-node C] [--head-cpus C]
#                             [--port P] [--object-store-mb M] [--dir DIR]
#   scripts/ray_cluster.sh env    [--dir DIR]   # export lines for a driver: eval "$(...)"
#   scripts/ray_cluster.sh status [--dir DIR]   # our nodes' processes + `ray status`
#   scripts/ray_cluster.sh kill-node I [--dir DIR]  # SIGKILL worker node I (1..N): a node loss
#   scripts/ray_cluster.sh down   [--dir DIR]   # stop exactly the nodes `up` started
#
# Defaults: 2 workers, 1 CPU per node (head included), 200 MB object store per node, a
# free GCS port, state in ${TMPDIR:-/tmp}/downsize-ray-$UID (pids, logs, the token, env).
#
# Each node is started in its own session (setsid), so all its processes (raylet, agents,
# workers) share one process group: `down` and `kill-node` signal exactly those groups,
# after checking that they still belong to this cluster. It never runs `ray stop`, which
# kills every Ray process of every user cluster on the machine.
#
# Security: token authentication (RAY_AUTH_MODE=token) with a fresh 256-bit token in
# DIR/auth_token (0600) unless RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH is already set; a
# driver needs RAY_ADDRESS, RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (`env` prints
# them). Ray's gRPC servers listen on all interfaces, and on Linux Ray replaces
# --node-ip-address=127.0.0.1 by the machine's routable IP, so the nodes advertise that
# IP; the token is what keeps others out. The dashboard is not started.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$repo/.venv/bin/ray" ]; then
    RAY="$repo/.venv/bin/ray"
    PY="$repo/.venv/bin/python"
else
    RAY="$(command -v ray || true)"
    PY="$(command -v python3)"
fi

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "ray_cluster.sh: $*" >&2; exit 2; }

cmd="${1:-}"
[ -n "$cmd" ] || { usage; exit 2; }
shift
workers=2
cpus=1
head_cpus=""
port=0
store_mb=200
dir="${TMPDIR:-/tmp}/downsize-ray-$(id -u)"
node_index=""
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) workers="$2"; shift 2 ;;
        --cpus-per-node) cpus="$2"; shift 2 ;;
        --head-cpus) head_cpus="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --object-store-mb) store_mb="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        [0-9]*) node_index="$1"; shift ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
head_cpus="${head_cpus:-$cpus}"
case "$workers$cpus$head_cpus$port$store_mb" in
    *[!0-9]*) die "--workers, --cpus-per-node, --head-cpus, --port, --object-store-mb take integers" ;;
esac

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Is process group $1 still one of ours (a member's command line names node temp dir $2)?
group_is_ours() {
    local pgid="$1" tdir="$2" pid
    for pid in $(pgrep -g "$pgid" 2>/dev/null); do
        if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$tdir/"; then
            return 0
        fi
    done
    return 1
}

group_alive() { pgrep -g "$1" >/dev/null 2>&1; }

# The group's processes and their children: Ray's worker processes (ray::...) start in
# sessions of their own, as children of the raylet.
group_pids() {
    local pid
    for pid in $(pgrep -g "$1" 2>/dev/null); do
        echo "$pid"
        pgrep -P "$pid" 2>/dev/null || true
    done | sort -u
}

# SIGKILL a node's group and its workers at once (what a machine dying looks like).
kill_group() {
    local pids
    pids="$(group_pids "$1")"
    kill -KILL -- "-$1" 2>/dev/null || true
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
}

# Stop process group $1 (node temp dir $2): TERM, then KILL after a short grace; then
# KILL the node's worker processes that are left (they are in sessions of their own).
stop_group() {
    local pgid="$1" tdir="$2" grace="${3:-3}" i pids
    group_is_ours "$pgid" "$tdir" || return 0
    pids="$(group_pids "$pgid")"
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        group_alive "$pgid" || break
        sleep 0.1
    done
    kill -KILL -- "-$pgid" 2>/dev/null || true
    # shellcheck disable=SC2086
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        group_alive "$pgid" || return 0
        sleep 0.1
    done
    echo "ray_cluster.sh: process group $pgid did not exit" >&2
}

load_env() {
    [ -f "$dir/env" ] || die "no cluster state in $dir (run: scripts/ray_cluster.sh up)"
    # shellcheck disable=SC1091
    . "$dir/env"
}

# Start one node: $1 = name (head, w1, ...), remaining args go to `ray start`.
start_node() {
    local name="$1" tdir
    shift
    tdir="$(cat "$dir/tmpdir")/$name"
    mkdir -p "$tdir"
    setsid "$RAY" start --temp-dir="$tdir" --disable-usage-stats \
        --min-worker-port=0 --max-worker-port=0 "$@" >"$dir/logs/$name.log" 2>&1 &
    local pgid=$!
    if ! wait "$pgid"; then
        echo "ray_cluster.sh: \`ray start\` for $name failed; the end of $dir/logs/$name.log:" >&2
        tail -n 20 "$dir/logs/$name.log" >&2
        stop_group "$pgid" "$tdir" 0
        return 1
    fi
    echo "$name $pgid $tdir" >>"$dir/nodes"
}

cmd_up() {
    [ -n "$RAY" ] || die "ray is not installed (bash scripts/setup.sh)"
    if [ -f "$dir/nodes" ]; then
        while read -r _ pgid tdir; do
            if group_is_ours "$pgid" "$tdir"; then
                die "a cluster is already running from $dir (scripts/ray_cluster.sh down --dir $dir)"
            fi
        done <"$dir/nodes"
    fi
    cmd_down >/dev/null
    if [ ! -d "$dir" ]; then
        mkdir -p "$dir"
        chmod 700 "$dir"
    fi
    mkdir -p "$dir/logs"
    rm -f "$dir/logs/"*.log
    # Ray's unix sockets live under the temp dirs; keep their paths short (108-byte limit).
    mktemp -d /tmp/rayc.XXXXXX >"$dir/tmpdir"

    export RAY_AUTH_MODE=token
    if [ -z "${RAY_AUTH_TOKEN:-}" ]; then
        if [ -z "${RAY_AUTH_TOKEN_PATH:-}" ]; then
            export RAY_AUTH_TOKEN_PATH="$dir/auth_token"
        fi
        if [ ! -s "$RAY_AUTH_TOKEN_PATH" ]; then
            (umask 077 && "$PY" -c 'import secrets, sys; sys.stdout.write(secrets.token_hex(32))' \
                >"$RAY_AUTH_TOKEN_PATH")
        fi
    fi
    [ "$port" != 0 ] || port="$(free_port)"
    local store=$((store_mb * 1000 * 1000)) t0=$SECONDS
    trap 'echo "ray_cluster.sh: up failed; stopping what started" >&2; cmd_down >/dev/null 2>&1' ERR

    start_node head --head --port="$port" --node-ip-address=127.0.0.1 \
        --num-cpus="$head_cpus" --num-gpus=0 --object-store-memory="$store" \
        --include-dashboard=false
    # The address the head advertises (Ray maps 127.0.0.1 to the routable IP on Linux).
    local ip
    ip="$(grep -oE "ray start --address='[^']+'" "$dir/logs/head.log" | head -n 1 \
        | sed -E "s/.*'([^']+):[0-9]+'/\1/")"
    [ -n "$ip" ] || ip=127.0.0.1
    local address="$ip:$port"
    {
        echo "export RAY_ADDRESS=$address"
        echo "export RAY_AUTH_MODE=token"
        if [ -n "${RAY_AUTH_TOKEN_PATH:-}" ]; then
            echo "export RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH"
        fi
    } >"$dir/env"

    local i
    for ((i = 1; i <= workers; i++)); do
        start_node "w$i" --address="$address" --node-ip-address=127.0.0.1 \
            --num-cpus="$cpus" --num-gpus=0 --object-store-memory="$store"
    done
    trap - ERR
    echo "Ray cluster up in $((SECONDS - t0)) s: head + $workers worker node(s), $address"
    echo "  state: $dir"
    echo "  for a driver:   eval \"\$(scripts/ray_cluster.sh env --dir $dir)\""
    sed 's/^/    /' "$dir/env"
    echo "  then:           python -m nas.search runner=ray runner.address=auto ..."
    echo "  stop:           scripts/ray_cluster.sh down --dir $dir"
}

cmd_down() {
    local name pgid tdir n=0 tmp
    if [ -f "$dir/nodes" ]; then
        # Workers first (in parallel), then the head (the GCS).
        while read -r name pgid tdir; do
            [ "$name" = head ] && continue
            stop_group "$pgid" "$tdir" 3 &
            n=$((n + 1))
        done <"$dir/nodes"
        wait
        while read -r name pgid tdir; do
            [ "$name" = head ] || continue
            stop_group "$pgid" "$tdir" 3
            n=$((n + 1))
        done <"$dir/nodes"
    fi
    tmp="$(cat "$dir/tmpdir" 2>/dev/null || true)"
    case "$tmp" in /tmp/rayc.*) rm -rf "$tmp" ;; esac
    rm -f "$dir/nodes" "$dir/env" "$dir/tmpdir"
    echo "stopped $n node(s) of the cluster in $dir"
}

cmd_env() {
    load_env
    cat "$dir/env"
}

cmd_status() {
    load_env
    local name pgid tdir
    while read -r name pgid tdir; do
        if group_is_ours "$pgid" "$tdir"; then
            echo "$name: running (process group $pgid)"
        else
            echo "$name: stopped"
        fi
    done <"$dir/nodes"
    echo "RAY_ADDRESS=$RAY_ADDRESS"
    "$RAY" status --address="$RAY_ADDRESS" 2>&1 | sed -n '/^Node status/,/^Resources/p' || true
}

cmd_kill_node() {
    load_env
    [ -n "$node_index" ] || die "kill-node needs a worker index (1..N)"
    local name pgid tdir
    while read -r name pgid tdir; do
        if [ "$name" = "w$node_index" ]; then
            group_is_ours "$pgid" "$tdir" || die "worker node $node_index is not running"
            kill_group "$pgid"
            echo "killed worker node $node_index (process group $pgid)"
            return 0
        fi
    done <"$dir/nodes"
    die "no worker node $node_index in $dir"
}

case "$cmd" in
    up) cmd_up ;;
    down) cmd_down ;;
    env) cmd_env ;;
    status) cmd_status ;;
    kill-node) cmd_kill_node ;;
    -h|--help|help) usage ;;
    *) die "unknown command: $cmd (up, down, env, status, kill-node)" ;;
esac
