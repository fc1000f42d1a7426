#!/usr/bin/env bash
# An MLflow tracking server that trials on other machines (Ray workers) log to over HTTP.
#
#   scripts/mlflow_server.sh [start] [--daemon] [--host H] [--port P] [--dir DIR]
#                            [--backend-store-uri URI] [--artifacts-destination URI]
#                            [--workers W] [-- extra `mlflow server` options]
#   scripts/mlflow_server.sh stop   [--dir DIR]
#   scripts/mlflow_server.sh status [--dir DIR]
#
#   --host                   interface to bind (default 127.0.0.1: this machine only; use
#                            0.0.0.0 or the LAN IP for a cluster, see docs/cluster.md)
#   --port                   default 5000
#   --dir                    state directory (default ./mlflow-server): the SQLite store
#                            mlflow.db, the artifacts, and in daemon mode server.pid and
#                            server.log
#   --backend-store-uri      default sqlite:///DIR/mlflow.db; or postgresql://user@host/db
#   --artifacts-destination  where the server stores artifacts (default DIR/artifacts; or
#                            s3://..., gs://...). Artifacts are always proxied
#                            (--serve-artifacts): workers upload them over HTTP and need
#                            no access to the store.
#   --workers                uvicorn worker processes (default 1; MLflow's own default is 4)
#   --daemon                 start in the background, wait until /health answers, return
#
# It prints the setting for the search: mlflow.tracking_uri=http://HOST:PORT
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
if [ -x "$repo/.venv/bin/mlflow" ]; then
    MLFLOW="$repo/.venv/bin/mlflow"
    PY="$repo/.venv/bin/python"
else
    MLFLOW="$(command -v mlflow || true)"
    PY="$(command -v python3)"
fi

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "mlflow_server.sh: $*" >&2; exit 2; }

cmd=start
case "${1:-}" in
    start|stop|status) cmd="$1"; shift ;;
esac
host=127.0.0.1
port=5000
dir="./mlflow-server"
backend=""
artifacts=""
workers=1
daemon=0
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --host) host="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --dir) dir="$2"; shift 2 ;;
        --backend-store-uri) backend="$2"; shift 2 ;;
        --artifacts-destination) artifacts="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        --daemon) daemon=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
case "$port$workers" in *[!0-9]*|"") die "--port and --workers take integers" ;; esac
[ "$cmd" != start ] || mkdir -p "$dir"
[ ! -d "$dir" ] || dir="$(cd "$dir" && pwd)"
pidfile="$dir/server.pid"
logfile="$dir/server.log"

# The URI clients use: a wildcard bind is reached through this host's name/IP.
client_host="$host"
case "$host" in
    0.0.0.0|::) client_host="$(hostname -I 2>/dev/null | awk '{print $1}')"; client_host="${client_host:-127.0.0.1}" ;;
esac
case "$client_host" in *:*) client_host="[$client_host]" ;; esac
uri="http://$client_host:$port"

running_pid() {
    [ -f "$pidfile" ] || return 1
    local pid
    pid="$(cat "$pidfile")"
    # Ours only if the process is still an `mlflow server` (pids get reused).
    if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "mlflow"; then
        echo "$pid"
        return 0
    fi
    return 1
}

healthy() {
    "$PY" - "$1" <<'EOF'
import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1] + "/health", timeout=2) as r:
        sys.exit(0 if r.status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
}

cmd_stop() {
    local pid i
    if ! pid="$(running_pid)"; then
        rm -f "$pidfile"
        echo "no MLflow server running from $dir"
        return 0
    fi
    # The server was started in its own session: its process group is the server and
    # its uvicorn workers.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pidfile"
    echo "stopped the MLflow server (pid $pid) of $dir"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        echo "MLflow server running (pid $pid), state in $dir; see $logfile"
        return 0
    fi
    echo "no MLflow server running from $dir"
    return 1
}

cmd_start() {
    [ -n "$MLFLOW" ] || die "mlflow is not installed (bash scripts/setup.sh)"
    if pid="$(running_pid)"; then
        die "an MLflow server is already running from $dir (pid $pid); stop it first"
    fi
    # MLflow 3 refuses the ./mlruns file store by default: SQLite is the local default.
    backend="${backend:-sqlite:///$dir/mlflow.db}"
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; the project installs psycopg2.
    case "$backend" in
        postgresql://*)
            if ! "$PY" -c 'import psycopg' 2>/dev/null; then
                backend="postgresql+psycopg2://${backend#postgresql://}"
            fi ;;
    esac
    artifacts="${artifacts:-$dir/artifacts}"
    case "$artifacts" in
        *://*) ;;
        *) mkdir -p "$artifacts"; artifacts="$(cd "$artifacts" && pwd)" ;;
    esac
    local args=(server --host "$host" --port "$port" --workers "$workers"
        --backend-store-uri "$backend"
        --serve-artifacts --artifacts-destination "$artifacts")
    args+=("${extra[@]}")
    # Keep the password out of what is printed.
    local shown_backend
    shown_backend="$(echo "$backend" | sed -E 's#(://[^:/@]+):[^@]*@#\1:***@#')"
    if [ "$daemon" = 0 ]; then
        echo "MLflow server on $uri (backend $shown_backend, artifacts $artifacts); Ctrl-C stops it"
        echo "for the search:  mlflow.tracking_uri=$uri"
        exec "$MLFLOW" "${args[@]}"
    fi
    if "$PY" -c 'import socket, sys; s = socket.socket(); s.settimeout(1); sys.exit(s.connect_ex((sys.argv[1], int(sys.argv[2]))) != 0)' \
        "${client_host//[\[\]]/}" "$port" 2>/dev/null; then
        die "port $port on $client_host is in use (choose another with --port)"
    fi
    local t0=$SECONDS
    setsid "$MLFLOW" "${args[@]}" >"$logfile" 2>&1 </dev/null &
    echo $! >"$pidfile"
    local pid=$! i
    for ((i = 0; i < 240; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pidfile"
            echo "mlflow_server.sh: the server exited; the end of $logfile:" >&2
            tail -n 20 "$logfile" >&2
            exit 1
        fi
        if healthy "$uri"; then
            echo "MLflow server up in $((SECONDS - t0)) s on $uri (pid $pid)"
            echo "  backend $shown_backend, artifacts $artifacts, log $logfile"
            echo "  for the search:  mlflow.tracking_uri=$uri"
            echo "  stop:            scripts/mlflow_server.sh stop --dir $dir"
            return 0
        fi
        sleep 0.5
    done
    echo "mlflow_server.sh: no answer on $uri/health after 120 s; stopping it" >&2
    cmd_stop >&2
    exit 1
}

case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
esac
