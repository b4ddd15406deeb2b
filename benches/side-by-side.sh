#!/usr/bin/env bash
# Side-by-side benchmark: qaqpa vs nginx and HAProxy as reverse proxies to the same
# fast upstream.
#
#   benches/side-by-side.sh [--rounds N] [--duration SECONDS] [--out FILE] [--peers "nginx nginxlog haproxy qaqpa"]
#
# Every proxy runs pinned to core 0 with one worker (nginx `master_process off`,
# HAProxy `nbthread 1` with `http-reuse always`, qaqpa `TOKIO_WORKER_THREADS=1`);
# the upstream (a second nginx returning 1 KiB) and the load generators share
# core 1. `nginxlog` is the same nginx with a buffered access log (`buffer=64k
# flush=1s`): what a peer that keeps a record of each request pays. Rounds
# interleave the peers; the table reports medians. CPU time per request is
# utime+stime of the proxy process from /proc over the run, divided by requests
# completed (the figure that stays stable on noisy VMs, where throughput swings
# 2-3x between runs), shown whole and split into user and kernel time; the
# upstream's CPU per request shows what each proxy makes the provider spend.
# Loopback only, bounded in time (about 8 minutes with the defaults and four peers); stops only the
# processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=3
DURATION=4
OUT=""
PEERS="nginx nginxlog haproxy qaqpa"
while (($#)); do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
for tool in nginx wrk haproxy; do
  if ! command -v "$tool" >/dev/null; then
    echo "installing $tool (apt)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "$(case $tool in nginx) echo nginx-light ;; *) echo "$tool" ;; esac)" >/dev/null
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
LOG_PLAIN=18183; LOG_TLS=18443
HAP_PLAIN=18184; HAP_TLS=18444
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
# nginx_proxy NAME PLAIN_PORT TLS_PORT [ACCESS_LOG_DIRECTIVE]
nginx_proxy() {
  cat >"$WORK/$1.conf" <<NGX
daemon off; master_process off; worker_rlimit_nofile 19000;
pid $WORK/$1.pid; error_log $WORK/$1.err warn;
events { worker_connections 15000; }
http { $common_http
  ${4:-}
  upstream backend { server $UP; keepalive 64; }
  server {
    listen 127.0.0.1:$2;
    listen 127.0.0.1:$3 ssl http2;
    ssl_certificate $PKI/gateway.crt; ssl_certificate_key $PKI/gateway.key;
    ssl_client_certificate $PKI/ca.crt; ssl_verify_client on;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  } }
NGX
}
nginx_proxy proxy $NGX_PLAIN $NGX_TLS
# The same proxy keeping a record of each request: the default combined format,
# buffered (one write per 64 KiB or per second), as a logging nginx is deployed.
nginx_proxy proxylog $LOG_PLAIN $LOG_TLS "access_log $WORK/access.log combined buffer=64k flush=1s;"
cat "$PKI/gateway.crt" "$PKI/gateway.key" >"$WORK/haproxy.pem"
cat >"$WORK/haproxy.cfg" <<HAP
global
  nbthread 1
  # HAProxy reserves 2 descriptors per connection: under the 20,000 open files
  # the script raises to, 9,950 is its most (hence IDLE below).
  maxconn 9950
  tune.ssl.default-dh-param 2048
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  http-reuse always
frontend plain
  bind 127.0.0.1:$HAP_PLAIN
  default_backend up
frontend tls
  bind 127.0.0.1:$HAP_TLS ssl crt $WORK/haproxy.pem ca-file $PKI/ca.crt verify required alpn h2,http/1.1 ssl-min-ver TLSv1.2
  default_backend up
backend up
  server up1 $UP maxconn 64
HAP
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

taskset -c 1 nginx -c "$WORK/upstream.conf" & UPSTREAM=$!; PIDS+=($UPSTREAM)
declare -A PID
start_peers() {
  for p in $PEERS; do
    case $p in
      nginx) taskset -c 0 nginx -c "$WORK/proxy.conf" & ;;
      nginxlog) taskset -c 0 nginx -c "$WORK/proxylog.conf" & ;;
      haproxy) taskset -c 0 haproxy -db -f "$WORK/haproxy.cfg" & ;;
      qaqpa) TOKIO_WORKER_THREADS=1 taskset -c 0 "$QAQPA" --log-level error run --config "$WORK/qaqpa.toml" & ;;
      *) echo "unknown peer $p" >&2; exit 2 ;;
    esac
    PID[$p]=$!; PIDS+=($!)
  done
  for p in $PEERS; do wait_port "$(port_of "$p" plain)"; wait_port "$(port_of "$p" tls)"; done
}
port_of() {
  case "$1:$2" in
    nginx:plain) echo $NGX_PLAIN ;; nginx:*) echo $NGX_TLS ;;
    nginxlog:plain) echo $LOG_PLAIN ;; nginxlog:*) echo $LOG_TLS ;;
    haproxy:plain) echo $HAP_PLAIN ;; haproxy:*) echo $HAP_TLS ;;
    qaqpa:plain) echo $QQ_PLAIN ;; qaqpa:*) echo $QQ_TLS ;;
  esac
}
wait_port 18180
start_peers

RESULTS=$WORK/results.jsonl
# url_for PROXY MODE
url_for() {
  case "$2" in
    plain) echo "http://127.0.0.1:$(port_of "$1" plain)$PATH_Q" ;;
    *) echo "https://localhost:$(port_of "$1" tls)$PATH_Q" ;;
  esac
}
# user and system CPU ticks of a process so far, "USER SYS"
cpu_split() { awk '{print $14, $15}' "/proc/$1/stat"; }
load_args() {
  local mode=$1
  local a=(-H "X-Road-Client: $CLIENT" --method POST --body-bytes 1024 --json)
  [ "$mode" = plain ] || a+=(--ca "$PKI/ca.crt" --cert "$PKI/egov-portal.crt" --key "$PKI/egov-portal.key")
  [ "$mode" = h2 ] && a+=(--h2)
  printf '%s\n' "${a[@]}"
}
pid_of() { echo "${PID[$1]}"; }

# measure PROXY MODE KIND [RATE]: one run, one JSON line appended to RESULTS
measure() {
  local proxy=$1 mode=$2 kind=$3 rate=${4:-}
  local pid; pid=$(pid_of "$proxy")
  local url; url=$(url_for "$proxy" "$mode")
  mapfile -t args < <(load_args "$mode")
  local before after up_before up_after out
  before=$(cpu_split "$pid"); up_before=$(cpu_ticks "$UPSTREAM")
  if [ "$kind" = wrk ]; then
    out=$(taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" -s "$WORK/post.lua" "$url" | awk '/requests in/ {print $1}')
    out="{\"requests\": $out, \"ok\": $out, \"throughput_rps\": $(echo "$out / $DURATION" | bc -l), \"latency_ms\": {\"p99\": null}}"
  elif [ -n "$rate" ]; then
    out=$(taskset -c 1 "$LOAD" "$url" "${args[@]}" --warmup 1s --duration "${DURATION}s" --connections 32 --rate "$rate")
  else
    out=$(taskset -c 1 "$LOAD" "$url" "${args[@]}" --warmup 1s --duration "${DURATION}s" --connections 32)
  fi
  after=$(cpu_split "$pid"); up_after=$(cpu_ticks "$UPSTREAM")
  python3 - "$proxy" "$mode" "$kind" "$before" "$after" "$up_before" "$up_after" "$CLK_TCK" "$out" >>"$RESULTS" <<'PY'
import json, sys
proxy, mode, kind, before, after, up_before, up_after, tck, out = sys.argv[1:]
r = json.loads(out)
(u0, s0), (u1, s1) = map(int, before.split()), map(int, after.split())
per_req = lambda ticks: ticks / int(tck) * 1e6 / max(1, r["requests"])
# A p99 of 0 is an empty histogram: no answer to a request of the measured window
# came back before the run ended (the peer queued past it); not a latency.
print(json.dumps({"proxy": proxy, "mode": mode, "kind": kind, "rps": r["throughput_rps"],
  "p99_ms": r["latency_ms"]["p99"] or None, "errors": sum(r.get("errors", {}).values()) if isinstance(r.get("errors"), dict) else 0,
  "cpu_us_per_req": per_req(u1 - u0 + s1 - s0), "user_us_per_req": per_req(u1 - u0),
  "sys_us_per_req": per_req(s1 - s0), "upstream_us_per_req": per_req(int(up_after) - int(up_before))}))
PY
}

echo "$PEERS; nginx $(nginx -v 2>&1 | sed 's/.*\///'), $(haproxy -v | head -1 | awk '{print $1, $3}'), $ROUNDS rounds of ${DURATION}s, $(date -u +%FT%TZ), $(nproc) cores" >&2
for round in $(seq "$ROUNDS"); do
  for mode in plain mtls h2; do
    for proxy in $PEERS; do
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
v=v or [r['rps'] for r in rs if r['mode']=='$mode' and r['kind']=='saturate']
print(int(statistics.median(v)/2))")
  for round in $(seq "$ROUNDS"); do
    for proxy in $PEERS; do measure "$proxy" "$mode" half "$rate"; done
  done
done
echo "latency rounds done" >&2

# Memory: idle, then with $IDLE idle keep-alive connections (plaintext and TLS);
# 9,900 rather than 10,000 so HAProxy can hold them all (its maxconn above).
IDLE=9900
mem_json() {
  local proxy=$1 mode=$2 pid; pid=$(pid_of "$proxy")
  local idle; idle=$(rss_kib "$pid")
  mapfile -t args < <(load_args "$mode")
  local url; url=$(url_for "$proxy" "$mode")
  local fifo=$WORK/idle.$proxy.$mode; mkfifo "$fifo"
  taskset -c 1 "$LOAD" "$url" "${args[@]}" --idle $IDLE --duration 4s --connections 1 >"$fifo" &
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
  for p in $PEERS; do kill "${PID[$p]}"; wait "${PID[$p]}" 2>/dev/null || true; done
  start_peers
  sleep 0.5
}
for mode in plain mtls; do
  restart
  for proxy in $PEERS; do mem_json "$proxy" "$mode"; done
done

python3 - "$RESULTS" "$PEERS" <<'PY' | tee ${OUT:+"$OUT"}
import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
peers = sys.argv[2].split()
def med(proxy, mode, kind, key):
    v = [r[key] for r in rs if r["proxy"] == proxy and r["mode"] == mode and r["kind"] == kind and r.get(key) is not None]
    return statistics.median(v) if v else float("nan")
ratios = [(q, b) for q, b in [("qaqpa", "nginx"), ("qaqpa", "haproxy")] if q in peers and b in peers]
print("| mode | metric | " + " | ".join(peers) + "".join(f" | {q}/{b}" for q, b in ratios) + " |")
print("|---|---|" + "---:|" * (len(peers) + len(ratios)))
def row(label, metric, values, fmt):
    cells = [fmt.format(values[p]) for p in peers]
    cells += [f"{values[q] / values[b]:.2f}" if values[b] else "nan" for q, b in ratios]
    print(f"| {label} | {metric} | " + " | ".join(cells) + " |")
for mode, label in [("plain", "HTTP/1.1 plaintext"), ("mtls", "HTTP/1.1 mTLS"), ("h2", "HTTP/2 mTLS")]:
    for kind, key, metric, fmt in [("saturate", "rps", "saturation req/s (qaqpa-load, 32 conns)", "{:.0f}"),
                                   ("wrk", "rps", "saturation req/s (wrk, 32 conns)", "{:.0f}"),
                                   ("saturate", "cpu_us_per_req", "proxy CPU µs/request", "{:.1f}"),
                                   ("saturate", "user_us_per_req", "of which user", "{:.1f}"),
                                   ("saturate", "sys_us_per_req", "of which kernel", "{:.1f}"),
                                   ("saturate", "upstream_us_per_req", "upstream CPU µs/request", "{:.1f}"),
                                   ("half", "p99_ms", "p99 ms at 50% of nginx max", "{:.3f}")]:
        values = {p: med(p, mode, kind, key) for p in peers}
        if all(v != v for v in values.values()):  # nan: not measured for this mode
            continue
        row(label, metric, values, fmt)
for mode, label in [("plain", "plaintext"), ("mtls", "mTLS")]:
    m = {r["proxy"]: r for r in rs if r["kind"] == "memory" and r["mode"] == mode}
    if len(m) == len(peers):
        row(label, "RSS idle KiB", {p: m[p]["idle_kib"] for p in peers}, "{}")
        held = "/".join(str(m[p]["connections"]) for p in peers)
        row(label, f"bytes per idle conn (held {held})", {p: max(1, m[p]["bytes_per_conn"]) for p in peers}, "{:.0f}")
total_err = {p: sum(r.get("errors", 0) for r in rs if r["proxy"] == p) for p in peers}
print("\nerrors during the runs: " + ", ".join(f"{p} {e}" for p, e in total_err.items()))
PY
