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
