#!/usr/bin/env bash
# Complete signed exchanges per second (DESIGN §8: ≥ 2,000/s on 2 vCPUs): a SOAP
# client's XMLDSig verified (chain, CRL-free trust, signer binding, timestamp, replay
# guard), routed over mTLS, forwarded to an nginx upstream, the answer returned —
# beside the same exchange unsigned (signature = "none") in the same run.
# Messages are signed by qaqpa-load before the clock starts, each with its own id.
#   benches/signed-exchange.sh [--duration 10s] [--connections 32]
# Bounded: at most 2 × 60,000 requests, loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
N=60000
bench_args 10s 32 "$@"
command -v nginx >/dev/null || { echo "nginx is required (apt install nginx-light)" >&2; exit 1; }
bench_build
bench_workdir signed
CLIENT=KZ/GOV/000000000003/egov-portal; PROVIDER=KZ/GOV/000000000001/register
UP=127.0.0.1:18391; TLS=127.0.0.1:18443
"$QAQPA" certs init --dir "$WORK/pki" --system "$CLIENT" >/dev/null
mkdir -p "$WORK/tmp"
ANSWER='<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><r>ok</r></s:Body></s:Envelope>'
cat >"$WORK/upstream.conf" <<NGX
daemon off; master_process off; pid $WORK/up.pid; error_log $WORK/up.err warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 10000000; client_body_temp_path $WORK/tmp;
  server { listen $UP; location / { default_type text/xml; return 200 '$ANSWER'; } } }
NGX
nginx -c "$WORK/upstream.conf" -p "$WORK" & 
cat >"$WORK/qaqpa.toml" <<TOML
[[listener]]
address = "$TLS"
tls = { cert = "pki/gateway.crt", key = "pki/gateway.key", client_ca = "pki/ca.crt" }
[signatures]
trust_anchors = "pki/ca.crt"
[storage]
data_dir = "data"
[[system]]
id = "$CLIENT"
[[system]]
id = "$PROVIDER"
[[service]]
id = "$PROVIDER/signed/v1"
kind = "soap"
upstream = ["http://$UP/"]
signature = "verify"
[[service]]
id = "$PROVIDER/plain/v1"
kind = "soap"
upstream = ["http://$UP/"]
[[access]]
service = "$PROVIDER/signed/v1"
clients = ["$CLIENT"]
[[access]]
service = "$PROVIDER/plain/v1"
clients = ["$CLIENT"]
TOML
"$QAQPA" --log-level warn run --config "$WORK/qaqpa.toml" &
wait_port 18443
message() {
  cat <<XML
<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers"><s:Header><xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>000000000003</id:memberCode><id:subsystemCode>egov-portal</id:subsystemCode></xrd:client><xrd:service id:objectType="SERVICE"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>000000000001</id:memberCode><id:subsystemCode>register</id:subsystemCode><id:serviceCode>$1</id:serviceCode><id:serviceVersion>v1</id:serviceVersion></xrd:service><xrd:id>{id}</xrd:id><xrd:protocolVersion>4.0</xrd:protocolVersion></s:Header><s:Body><p:GetPerson xmlns:p="urn:person"><p:iin>900101300123</p:iin><p:purpose>$(head -c 600 /dev/zero | tr '\0' 'x')</p:purpose></p:GetPerson></s:Body></s:Envelope>
XML
}
message signed >"$WORK/signed.xml"; message plain | sed 's/{id}/plain-1/' >"$WORK/plain.xml"
common=(--method POST -H "content-type: text/xml; charset=utf-8" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/egov-portal.crt"
  --key "$WORK/pki/egov-portal.key" --connections "$CONNECTIONS" --duration "$DURATION" --warmup 1s --max-requests $N --json)
echo "== unsigned SOAP over mTLS" >&2
"$LOAD" "https://localhost:18443/soap" --body-file "$WORK/plain.xml" "${common[@]}" | tee "$WORK/plain.json"
echo "== signed SOAP over mTLS (verify: XMLDSig, chain, binding, timestamp, replay)" >&2
"$LOAD" "https://localhost:18443/soap" --body-file "$WORK/signed.xml" --signed-soap $N \
  --sign-key "$WORK/pki/egov-portal.key" --sign-cert "$WORK/pki/egov-portal.crt" "${common[@]}" | tee "$WORK/signed.json"
python3 - "$WORK/plain.json" "$WORK/signed.json" <<'PY'
import json, sys
plain, signed = (json.load(open(p)) for p in sys.argv[1:3])
rate = lambda r: r["ok"] / r["duration_s"]
print(f"unsigned: {rate(plain):,.0f}/s (p99 {plain['latency_ms']['p99']} ms)  signed: {rate(signed):,.0f}/s (p99 {signed['latency_ms']['p99']} ms)  ratio {rate(signed)/max(rate(plain),1):.2f}")
print("errors:", plain.get("errors"), signed.get("errors"))
PY
