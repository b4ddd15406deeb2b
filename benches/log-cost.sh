#!/usr/bin/env bash
# What the durable message log costs (docs/operations.md#message-log): one qaqpa
# binary, one mTLS route, twice — `message_log = "sync"` (the default: a forwarding
# record and the exchange's record each fsync'd, group-committed, before the
# provider is called and before the answer) and `message_log = "async"` (records
# written behind the answer, never waited for: what the log did before it kept its
# promise). Both on core 0, the upstream (nginx) and the load on core 1; data
# directories on the real disk. Interleaved rounds; medians of: saturation
# throughput (closed loop), and at fixed open-loop rates the proxy's CPU µs per
# request (utime+stime from /proc), p50 and p99 latency.
#
#   benches/log-cost.sh [--rounds N] [--duration SECONDS] [--rates "1000 3000"]
#
# Loopback only, bounded (about 2 minutes with the defaults), stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3; DURATION=5; RATES="1000 3000"
while (($#)); do case "$1" in
  --rounds) ROUNDS=$2; shift 2 ;; --duration) DURATION=$2; shift 2 ;; --rates) RATES=$2; shift 2 ;; *) exit 2 ;;
esac; done
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
source benches/lib.sh
bench_build
bench_workdir logcost
# On the disk, not tmpfs: the fsync is what is measured.
WORK_DISK=$(mktemp -d "$PWD/target/log-cost.XXXXXX")
trap 'for p in "${PIDS[@]}" $(jobs -p); do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK" "$WORK_DISK"' EXIT
CLIENT=KZ/GOV/000000000003/egov-portal; SERVICE=KZ/GOV/000000000001/bench/echo/v1
"$QAQPA" certs init --dir "$WORK/pki" --system "$CLIENT" >/dev/null
config() { cat <<TOML
[[listener]]
address = "127.0.0.1:$1"
tls = { cert = "$WORK/pki/gateway.crt", key = "$WORK/pki/gateway.key", client_ca = "$WORK/pki/ca.crt" }
[storage]
data_dir = "$WORK_DISK/data-$1"
[overload]
enabled = false
[[system]]
id = "$CLIENT"
[[system]]
id = "KZ/GOV/000000000001/bench"
[[service]]
id = "$SERVICE"
kind = "rest"
upstream = ["http://127.0.0.1:18390"]
message_log = "$2"
[[access]]
service = "$SERVICE"
clients = ["$CLIENT"]
TOML
}
config 18391 sync >"$WORK/sync.toml"
config 18392 async >"$WORK/async.toml"
bench_upstream 18390
TOKIO_WORKER_THREADS=1 taskset -c 0 "$QAQPA" --log-level error run --config "$WORK/sync.toml" & SYNC=$!; PIDS+=($SYNC)
TOKIO_WORKER_THREADS=1 taskset -c 0 "$QAQPA" --log-level error run --config "$WORK/async.toml" & ASYNC=$!; PIDS+=($ASYNC)
wait_port 18390; wait_port 18391; wait_port 18392
tls=(--ca "$WORK/pki/ca.crt" --cert "$WORK/pki/egov-portal.crt" --key "$WORK/pki/egov-portal.key")
RES=$WORK/res.txt
run() { # variant load-label extra-args...
  local variant=$1 label=$2; shift 2
  local pid=$SYNC port=18391; [ "$variant" = async ] && { pid=$ASYNC; port=18392; }
  local before after out
  before=$(cpu_ticks $pid)
  out=$(taskset -c 1 "$LOAD" "https://localhost:$port/r1/$SERVICE/item" -H "X-Road-Client: $CLIENT" "${tls[@]}" \
    --method POST --body-bytes 1024 --warmup 1s --duration "${DURATION}s" --json "$@")
  after=$(cpu_ticks $pid)
  python3 -c "import json,sys; r=json.loads(sys.argv[1]); t=int(sys.argv[5]); n=max(1,r['requests']); l=r['latency_ms']; print(sys.argv[2], sys.argv[3], r['throughput_rps'], int(sys.argv[4])/t*1e6/n, l['p50'], l['p99'], sum(r['errors'].values()))" \
    "$out" "$variant" "$label" $((after-before)) "$(getconf CLK_TCK)" >>"$RES"
}
for round in $(seq "$ROUNDS"); do
  for variant in async sync; do
    run $variant max --connections 32
    for rate in $RATES; do run $variant "$rate/s" --connections 32 --rate "$rate"; done
  done
done
python3 - "$RES" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda v, k, i: statistics.median(float(r[i]) for r in rows if r[0] == v and r[1] == k)
loads = list(dict.fromkeys(r[1] for r in rows))
print("| load | log | req/s | CPU µs/request | p50 ms | p99 ms | errors |")
print("|---|---|---:|---:|---:|---:|---:|")
for k in loads:
    for v in ("async", "sync"):
        errs = sum(int(r[6]) for r in rows if r[0] == v and r[1] == k)
        print(f"| {k} | {v} | {med(v, k, 2):.0f} | {med(v, k, 3):.1f} | {med(v, k, 4):.2f} | {med(v, k, 5):.2f} | {errs} |")
for k in loads:
    a, s = med("async", k, 3), med("sync", k, 3)
    print(f"{k}: sync costs {100 * (s / a - 1):+.1f} % CPU per request; p99 {med('async', k, 5):.2f} → {med('sync', k, 5):.2f} ms")
PY
