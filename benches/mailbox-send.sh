#!/usr/bin/env bash
# Durable asynchronous sends end to end (DESIGN §8: ≥ 20,000 accepted 1 KiB
# messages/s with fsync): qaqpa-load POSTs 1 KiB bodies to /a1/{service} over mTLS;
# every 202 means the message is on disk (embedded store, group commit). Beside it,
# in the same run, the store alone (benches/benches/mailbox_store.rs) shows what the
# HTTP and TLS layers cost.
#   benches/mailbox-send.sh [--duration 10s] [--connections 128]
# Bounded: at most 600,000 requests, loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
N=600000
bench_args 10s 128 "$@"
bench_build
bench_workdir send
CLIENT=KZ/GOV/000000000003/egov-portal; PROVIDER=KZ/GOV/000000000001/register
TLS=127.0.0.1:18444
"$QAQPA" certs init --dir "$WORK/pki" --system "$CLIENT" >/dev/null
cat >"$WORK/qaqpa.toml" <<TOML
[[listener]]
address = "$TLS"
tls = { cert = "pki/gateway.crt", key = "pki/gateway.key", client_ca = "pki/ca.crt" }
[storage]
data_dir = "data"
[mailbox]
max_queue_depth = 10000000
[[system]]
id = "$CLIENT"
[[system]]
id = "$PROVIDER"
[[service]]
id = "$PROVIDER/notices/v1"
kind = "rest"
upstream = ["http://127.0.0.1:9/"]
mailbox = "pull"
[[access]]
service = "$PROVIDER/notices/v1"
clients = ["$CLIENT"]
TOML
"$QAQPA" --log-level warn run --config "$WORK/qaqpa.toml" &
GATEWAY=$!
wait_port 18444
BEFORE=$(cpu_ticks $GATEWAY)
# No X-Road-Id: the gateway gives each send a fresh id, so none is a duplicate.
echo "== POST /a1/{service}, 1 KiB, mTLS, $CONNECTIONS connections" >&2
"$LOAD" "https://localhost:18444/a1/$PROVIDER/notices/v1" --method POST --body-bytes 1024 \
  -H "x-road-client: $CLIENT" -H "content-type: application/json" \
  --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/egov-portal.crt" --key "$WORK/pki/egov-portal.key" \
  --connections "$CONNECTIONS" --duration "$DURATION" --warmup 1s --max-requests $N --json | tee "$WORK/send.json"
TICKS=$(( $(cpu_ticks $GATEWAY) - BEFORE ))
python3 - "$WORK/send.json" "$TICKS" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cpu_s = int(sys.argv[2]) / int(sys.argv[3])
requests = r["requests"] * (1 + 1 / r["duration_s"])  # the warm-up second ran too
print(f"accepted (202, fsync'd): {r['ok'] / r['duration_s']:,.0f}/s  p50 {r['latency_ms']['p50']} ms  p99 {r['latency_ms']['p99']} ms  errors {r.get('errors')}")
print(f"gateway CPU: {cpu_s:.1f} s, about {cpu_s / requests * 1e6:.0f} µs per accepted message (load generator on the same 2 cores)")
PY
ls -la "$WORK/data/mailbox.redb" | awk '{printf "store: %.1f MiB\n", $5/1048576}'
