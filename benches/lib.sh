# Shared setup of the bench scripts; `source benches/lib.sh` from the repository root.
# Every function here is one that at least two scripts used to spell out.

# Release builds of the gateway and the load generator. QAQPA=path runs another
# build of the gateway instead (an A/B in one session, on one machine).
bench_build() {
  cargo build --release -q -p qaqpa-gateway -p qaqpa-load
  QAQPA=${QAQPA:-$PWD/target/release/qaqpa}
  LOAD=$PWD/target/release/qaqpa-load
}

# A scratch directory in $WORK; on exit every process in $PIDS (and every
# background job) is stopped and the directory removed.
bench_workdir() {
  WORK=$(mktemp -d "/tmp/qaqpa-$1.XXXXXX")
  PIDS=()
  trap 'for p in "${PIDS[@]}" $(jobs -p); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
}

# `--duration D --connections N` into $DURATION and $CONNECTIONS, with defaults.
bench_args() {
  DURATION=$1; CONNECTIONS=$2; shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --duration) DURATION=$2; shift 2 ;;
      --connections) CONNECTIONS=$2; shift 2 ;;
      *) echo "usage: $0 [--duration $DURATION] [--connections $CONNECTIONS]" >&2; exit 2 ;;
    esac
  done
}

wait_port() {
  for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "port $1 did not open" >&2; exit 1
}

# User + system CPU ticks of a process so far (divide by `getconf CLK_TCK`).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# A fixed fast upstream on 127.0.0.1:PORT, pinned to core 1: nginx answering every
# request 200 with 1 KiB (what the gateway forwards to in the cost benches).
bench_upstream() {
  local body
  body=$(head -c 1024 /dev/zero | tr '\0' 'x')
  cat >"$WORK/up.conf" <<NGX
daemon off; master_process off; pid $WORK/up.pid; error_log $WORK/up.err warn;
events { worker_connections 4000; }
http { access_log off; keepalive_requests 10000000; client_body_temp_path $WORK;
  server { listen 127.0.0.1:$1; location / { return 200 "$body"; } } }
NGX
  taskset -c 1 nginx -c "$WORK/up.conf" & PIDS+=($!)
}
