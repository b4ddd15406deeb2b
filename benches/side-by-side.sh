#!/usr/bin/env bash
# Side-by-side benchmark: qaqpa vs nginx as a reverse proxy to the same fast upstream.
#
#   benches/side-by-side.sh [--rounds N] [--duration SECONDS] [--out FILE]
#
# Both proxies run pinned to core 0 with one worker; the upstream (a second nginx
# returning 1 KiB) and the load generators share core 1. Rounds interleave nginx and
# qaqpa; the table reports medians. CPU time per request is utime+stime of the proxy
# process from /proc over the run, divided by requests completed: the figure that
# stays stable on noisy VMs, where throughput swings 2-3x between runs.
# Loopback only, bounded in time (about 4 minutes with the defaults); stops only the
# processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3
DURATION=4
OUT=""
while (($#)); do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

for tool in nginx wrk; do
  if ! command -v "$tool" >/dev/null; then
    echo "installing $tool (apt)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "$([ "$tool" = nginx ] && echo nginx-light || echo wrk)" >/dev/null
  fi
done
[ "$(nproc)" -ge 2 ] || { echo "needs 2 cores (proxy on one, load on the other)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge 12000 ] || { echo "needs 12000 open files for the 10k-connection test" >&2; exit 1; }

source benches/lib.sh
bench_build
bench_workdir sbs

CLIENT=KZ/GOV/000000000003/egov-portal
SERVICE=KZ/GOV/000000000001/bench/echo/v1
UP=127.0.0.1:18180
NGX_PLAIN=18181; NGX_TLS=18441
QQ_PLAIN=18182; QQ_TLS=18442; QQ_ADMIN=18190
PATH_Q="/r1/$SERVICE/item"
CLK_TCK=$(getconf CLK_TCK)

"$QAQPA" certs init --dir "$WORK/pki" --system "$CLIENT" >/dev/null
PKI=$WORK/pki
mkdir -p "$WORK/tmp"
BODY=$(head -c 1024 /dev/zero | tr '\0' 'x')

common_http="access_log off; keepalive_requests 10000000; keepalive_timeout 300s;
  client_body_temp_path $WORK/tmp; proxy_temp_path $WORK/tmp; fastcgi_temp_path $WORK/tmp;
  uwsgi_temp_path $WORK/tmp; scgi_temp_path $WORK/tmp;"
cat >"$WORK/upstream.conf" <<NGX
daemon off; master_process off; worker_rlimit_nofile 19000;
pid $WORK/upstream.pid; error_log $WORK/upstream.err warn;
events { worker_connections 15000; }
http { $common_http
  server { listen $UP reuseport; location / { return 200 "$BODY"; } } }
NGX
cat >"$WORK/proxy.conf" <<NGX
daemon off; master_process off; worker_rlimit_nofile 19000;
pid $WORK/proxy.pid; error_log $WORK/proxy.err warn;
events { worker_connections 15000; }
http { $common_http
  upstream backend { server $UP; keepalive 64; }
  server {
    listen 127.0.0.1:$NGX_PLAIN;
    listen 127.0.0.1:$NGX_TLS ssl http2;
    ssl_certificate $PKI/gateway.crt; ssl_certificate_key $PKI/gateway.key;
    ssl_client_certificate $PKI/ca.crt; ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  } }
NGX
cat >"$WORK/qaqpa.toml" <<TOML
[[listener]]
name = "plain"
address = "127.0.0.1:$QQ_PLAIN"
insecure = true
[[listener]]
name = "tls"
address = "127.0.0.1:$QQ_TLS"
tls = { cert = "pki/gateway.crt", key = "pki/gateway.key", client_ca = "pki/ca.crt" }
[admin]
address = "127.0.0.1:$QQ_ADMIN"
insecure = true
[[system]]
id = "$CLIENT"
[[system]]
id = "KZ/GOV/000000000001/bench"
[[service]]
id = "$SERVICE"
kind = "rest"
upstream = ["http://$UP"]
[[access]]
service = "$SERVICE"
clients = ["$CLIENT"]
TOML
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["X-Road-Client"] = "$CLIENT"
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

taskset -c 1 nginx -c "$WORK/upstream.conf" & PIDS+=($!)
taskset -c 0 nginx -c "$WORK/proxy.conf" & NGINX=$!; PIDS+=($NGINX)
TOKIO_WORKER_THREADS=1 taskset -c 0 "$QAQPA" --log-level error run --config "$WORK/qaqpa.toml" & QQ=$!; PIDS+=($QQ)
wait_port 18180; wait_port $NGX_PLAIN; wait_port $NGX_TLS; wait_port $QQ_PLAIN; wait_port $QQ_TLS

RESULTS=$WORK/results.jsonl
# url_for PROXY MODE
url_for() {
  case "$1:$2" in
    nginx:plain) echo "http://127.0.0.1:$NGX_PLAIN$PATH_Q" ;;
    qaqpa:plain) echo "http://127.0.0.1:$QQ_PLAIN$PATH_Q" ;;
    nginx:*) echo "https://localhost:$NGX_TLS$PATH_Q" ;;
    qaqpa:*) echo "https://localhost:$QQ_TLS$PATH_Q" ;;
  esac
}
load_args() {
  local mode=$1
  local a=(-H "X-Road-Client: $CLIENT" --method POST --body-bytes 1024 --json)
  [ "$mode" = plain ] || a+=(--ca "$PKI/ca.crt" --cert "$PKI/egov-portal.crt" --key "$PKI/egov-portal.key")
  [ "$mode" = h2 ] && a+=(--h2)
  printf '%s\n' "${a[@]}"
}
pid_of() { [ "$1" = nginx ] && echo $NGINX || echo $QQ; }

# measure PROXY MODE KIND [RATE]: one run, one JSON line appended to RESULTS
measure() {
  local proxy=$1 mode=$2 kind=$3 rate=${4:-}
  local pid; pid=$(pid_of "$proxy")
  local url; url=$(url_for "$proxy" "$mode")
  mapfile -t args < <(load_args "$mode")
  local before after out
  before=$(cpu_ticks "$pid")
  if [ "$kind" = wrk ]; then
    out=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" -s "$WORK/post.lua" "$url" | awk '/requests in/ {print $1}')
    out="{\"requests\": $out, \"ok\": $out, \"throughput_rps\": $(echo "$out / $DURATION" | bc -l), \"latency_ms\": {\"p99\": null}}"
  elif [ -n "$rate" ]; then
    out=$(taskset -c 1 "$LOAD" "$url" "${args[@]}" --warmup 1s --duration "${DURATION}s" --connections 32 --rate "$rate")
  else
    out=$(taskset -c 1 "$LOAD" "$url" "${args[@]}" --warmup 1s --duration "${DURATION}s" --connections 32)
  fi
  after=$(cpu_ticks "$pid")
  python3 - "$proxy" "$mode" "$kind" "$before" "$after" "$CLK_TCK" "$out" >>"$RESULTS" <<'PY'
import json, sys
proxy, mode, kind, before, after, tck, out = sys.argv[1:]
r = json.loads(out)
cpu_s = (int(after) - int(before)) / int(tck)
print(json.dumps({"proxy": proxy, "mode": mode, "kind": kind, "rps": r["throughput_rps"],
  "p99_ms": r["latency_ms"]["p99"], "errors": sum(r.get("errors", {}).values()) if isinstance(r.get("errors"), dict) else 0,
  "cpu_us_per_req": cpu_s * 1e6 / max(1, r["requests"])}))
PY
}

echo "qaqpa vs nginx $(nginx -v 2>&1 | sed 's/.*\///'), $ROUNDS rounds of ${DURATION}s, $(date -u +%FT%TZ), $(nproc) cores" >&2
for round in $(seq "$ROUNDS"); do
  for mode in plain mtls h2; do
    for proxy in nginx qaqpa; do
      measure "$proxy" "$mode" saturate
      [ "$mode" = plain ] && measure "$proxy" "$mode" wrk
    done
  done
  echo "round $round saturation done" >&2
done
# p99 at half of nginx's median saturation rate, per mode.
for mode in plain mtls h2; do
  rate=$(python3 -c "
import json,statistics,sys
rs=[json.loads(l) for l in open('$RESULTS')]
v=[r['rps'] for r in rs if r['proxy']=='nginx' and r['mode']=='$mode' and r['kind']=='saturate']
print(int(statistics.median(v)/2))")
  for round in $(seq "$ROUNDS"); do
    for proxy in nginx qaqpa; do measure "$proxy" "$mode" half "$rate"; done
  done
done
echo "latency rounds done" >&2

# Memory: idle, then with 10,000 idle keep-alive connections (plaintext and TLS).
mem_json() {
  local proxy=$1 mode=$2 pid; pid=$(pid_of "$proxy")
  local idle; idle=$(rss_kib "$pid")
  mapfile -t args < <(load_args "$mode")
  local url; url=$(url_for "$proxy" "$mode")
  local fifo=$WORK/idle.$proxy.$mode; mkfifo "$fifo"
  taskset -c 1 "$LOAD" "$url" "${args[@]}" --idle 10000 --duration 4s --connections 1 >"$fifo" &
  local lp=$!
  local held; read -r held <"$fifo"
  local loaded; loaded=$(rss_kib "$pid")
  wait "$lp" || true
  python3 -c "
import json; h=json.loads('$held')
print(json.dumps({'proxy':'$proxy','mode':'$mode','kind':'memory','idle_kib':$idle,'loaded_kib':$loaded,
  'connections':h['idle_connections'],'bytes_per_conn':($loaded-$idle)*1024/max(1,h['idle_connections'])}))" >>"$RESULTS"
  sleep 1
}
# Fresh processes, so memory freed by the load runs cannot be reused and hide the cost.
restart() {
  kill "$NGINX" "$QQ"; wait "$NGINX" "$QQ" 2>/dev/null || true
  taskset -c 0 nginx -c "$WORK/proxy.conf" & NGINX=$!; PIDS+=($NGINX)
  TOKIO_WORKER_THREADS=1 taskset -c 0 "$QAQPA" --log-level error run --config "$WORK/qaqpa.toml" & QQ=$!; PIDS+=($QQ)
  wait_port $NGX_PLAIN; wait_port $NGX_TLS; wait_port $QQ_PLAIN; wait_port $QQ_TLS
  sleep 0.5
}
for mode in plain mtls; do
  restart
  for proxy in nginx qaqpa; do mem_json "$proxy" "$mode"; done
done

python3 - "$RESULTS" <<'PY' | tee ${OUT:+"$OUT"}
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
def med(proxy, mode, kind, key):
    v = [r[key] for r in rs if r["proxy"] == proxy and r["mode"] == mode and r["kind"] == kind and r[key] is not None]
    return statistics.median(v) if v else float("nan")
def errs(proxy, mode, kind):
    return sum(r.get("errors", 0) for r in rs if r["proxy"] == proxy and r["mode"] == mode and r["kind"] == kind)
print("| mode | metric | nginx | qaqpa | qaqpa/nginx |")
print("|---|---|---:|---:|---:|")
rows = []
for mode, label in [("plain", "HTTP/1.1 plaintext"), ("mtls", "HTTP/1.1 mTLS"), ("h2", "HTTP/2 mTLS")]:
    for kind, key, metric, fmt in [("saturate", "rps", "saturation req/s (qaqpa-load, 32 conns)", "{:.0f}"),
                                   ("wrk", "rps", "saturation req/s (wrk, 32 conns)", "{:.0f}"),
                                   ("saturate", "cpu_us_per_req", "proxy CPU µs/request", "{:.1f}"),
                                   ("half", "p99_ms", "p99 ms at 50% of nginx max", "{:.3f}")]:
        n, q = med("nginx", mode, kind, key), med("qaqpa", mode, kind, key)
        if n != n:  # nan: not measured for this mode
            continue
        print(f"| {label} | {metric} | {fmt.format(n)} | {fmt.format(q)} | {q / n:.2f} |")
for mode, label in [("plain", "plaintext"), ("mtls", "mTLS")]:
    m = {r["proxy"]: r for r in rs if r["kind"] == "memory" and r["mode"] == mode}
    if len(m) == 2:
        print(f"| {label} | RSS idle KiB | {m['nginx']['idle_kib']} | {m['qaqpa']['idle_kib']} | {m['qaqpa']['idle_kib'] / m['nginx']['idle_kib']:.2f} |")
        print(f"| {label} | bytes per idle conn (10k, held {m['nginx']['connections']}/{m['qaqpa']['connections']}) | {m['nginx']['bytes_per_conn']:.0f} | {m['qaqpa']['bytes_per_conn']:.0f} | {m['qaqpa']['bytes_per_conn'] / max(1, m['nginx']['bytes_per_conn']):.2f} |")
total_err = {p: sum(r.get("errors", 0) for r in rs if r["proxy"] == p) for p in ("nginx", "qaqpa")}
print(f"\nerrors during the runs: nginx {total_err['nginx']}, qaqpa {total_err['qaqpa']}")
PY
