#!/usr/bin/env bash
# What limits cost on the pass-through path: the same qaqpa binary and route, once
# without [[limit]] rules and overload shedding, once with a pair rate + daily quota,
# a consumer rate and shedding on (rates high enough never to refuse). Metrics and
# monitoring records are always on. Reports the proxy's CPU time per request
# (utime+stime from /proc / requests) and throughput, medians of interleaved rounds.
#
#   benches/limits-cost.sh [--rounds N] [--duration SECONDS]
#
# Loopback only, bounded (about a minute with the defaults), stops what it started.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3; DURATION=4
while (($#)); do case "$1" in --rounds) ROUNDS=$2; shift 2 ;; --duration) DURATION=$2; shift 2 ;; *) exit 2 ;; esac; done
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
source benches/lib.sh
bench_build
bench_workdir limits
CLIENT=KZ/GOV/000000000003/egov-portal; SERVICE=KZ/GOV/000000000001/bench/echo/v1
base() { cat <<TOML
[[listener]]
address = "127.0.0.1:$1"
insecure = true
[storage]
data_dir = "data-$1"
[[system]]
id = "$CLIENT"
[[system]]
id = "KZ/GOV/000000000001/bench"
[[service]]
id = "$SERVICE"
kind = "rest"
upstream = ["http://127.0.0.1:18380"]
[[access]]
service = "$SERVICE"
clients = ["$CLIENT"]
TOML
}
{ base 18381; printf '[overload]\nenabled = false\n'; } >"$WORK/off.toml"
{ base 18382; printf '[[limit]]\nservice = "%s"\nrate = "1000000/s"\nquota_day = 1000000000\n[[limit]]\nclient = "%s"\nrate = "1000000/s"\n' "$SERVICE" "$CLIENT"; } >"$WORK/on.toml"
bench_upstream 18380
TOKIO_WORKER_THREADS=1 taskset -c 0 "$QAQPA" --log-level error run --config "$WORK/off.toml" & OFF=$!; PIDS+=($OFF)
TOKIO_WORKER_THREADS=1 taskset -c 0 "$QAQPA" --log-level error run --config "$WORK/on.toml" & ON=$!; PIDS+=($ON)
wait_port 18380; wait_port 18381; wait_port 18382
RES=$WORK/res.txt
for round in $(seq "$ROUNDS"); do
  for variant in off on; do
    pid=$OFF; port=18381; [ $variant = on ] && { pid=$ON; port=18382; }
    before=$(cpu_ticks $pid)
    out=$(taskset -c 1 "$LOAD" "http://127.0.0.1:$port/r1/$SERVICE/item" -H "X-Road-Client: $CLIENT" --method POST --body-bytes 1024 --connections 32 --warmup 1s --duration "${DURATION}s" --json)
    after=$(cpu_ticks $pid)
    python3 -c "import json,sys; r=json.loads(sys.argv[1]); t=int(sys.argv[4]); print(sys.argv[2], r['throughput_rps'], (int(sys.argv[3]))/t*1e6/max(1,r['requests']), sum(r['errors'].values()))" "$out" $variant $((after-before)) "$(getconf CLK_TCK)" >>"$RES"
  done
done
python3 - "$RES" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
med = lambda v, i: statistics.median(float(r[i]) for r in rows if r[0] == v)
off_cpu, on_cpu = med("off", 2), med("on", 2)
print("| variant | req/s | CPU µs/request | errors |")
print("|---|---:|---:|---:|")
for v in ("off", "on"):
    print(f"| limits {v} | {med(v, 1):.0f} | {med(v, 2):.1f} | {sum(int(r[3]) for r in rows if r[0] == v)} |")
print(f"\nlimits cost: {100 * (on_cpu / off_cpu - 1):+.1f} % CPU per request")
PY
