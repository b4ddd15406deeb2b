#!/usr/bin/env bash
# Complete signed exchanges per second (DESIGN §8: ≥ 2,000/s on 2 vCPUs): a SOAP
# client's XMLDSig verified (chain, CRL-free trust, signer binding, timestamp, replay
# guard), routed over mTLS, forwarded to a provider that echoes the envelope
# (benches/examples/soap_echo.rs), the answer checked and returned —
# beside the same exchange unsigned (signature = "none") in the same run.
# Messages are signed by qaqpa-load before the clock starts, each with its own id.
#   benches/signed-exchange.sh [--duration 10s] [--connections 32]
# Bounded: at most 2 × 60,000 requests, loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
N=60000
bench_args 10s 32 "$@"
bench_build
cargo build --release -q -p qaqpa-benches --example soap_echo
bench_workdir signed
CLIENT=KZ/GOV/000000000003/egov-portal; PROVIDER=KZ/GOV/000000000001/register
UP=127.0.0.1:18391; TLS=127.0.0.1:18443
"$QAQPA" certs init --dir "$WORK/pki" --system "$CLIENT" >/dev/null
# The provider answers with the request's envelope: the same Header (client,
# service, id), as X-Road requires of a response, whatever the message's id.
target/release/examples/soap_echo "$UP" & PIDS+=($!)
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
"$QAQPA" --log-level warn run --config "$WORK/qaqpa.toml" & GATEWAY=$!; PIDS+=($GATEWAY)
wait_port 18443
message() {
  cat <<XML
<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers"><s:Header><xrd:client id:objectType="SUBSYSTEM"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>000000000003</id:memberCode><id:subsystemCode>egov-portal</id:subsystemCode></xrd:client><xrd:service id:objectType="SERVICE"><id:xRoadInstance>KZ</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>000000000001</id:memberCode><id:subsystemCode>register</id:subsystemCode><id:serviceCode>$1</id:serviceCode><id:serviceVersion>v1</id:serviceVersion></xrd:service><xrd:id>{id}</xrd:id><xrd:protocolVersion>4.0</xrd:protocolVersion></s:Header><s:Body><p:${1}Person xmlns:p="urn:person"><p:iin>900101300123</p:iin><p:purpose>$(head -c 600 /dev/zero | tr '\0' 'x')</p:purpose></p:${1}Person></s:Body></s:Envelope>
XML
}
message signed >"$WORK/signed.xml"; message plain | sed 's/{id}/plain-1/' >"$WORK/plain.xml"
common=(--method POST -H "content-type: text/xml; charset=utf-8" --ca "$WORK/pki/ca.crt" --cert "$WORK/pki/egov-portal.crt"
  --key "$WORK/pki/egov-portal.key" --connections "$CONNECTIONS" --duration "$DURATION" --warmup 0s --max-requests $N --json)
# The gateway's CPU over a run, per exchange: what each costs it, whatever limits
# the rate (on 2 cores the load generator's TLS client takes one of them).
TICK=$(getconf CLK_TCK)
echo "== unsigned SOAP over mTLS" >&2
t0=$(cpu_ticks $GATEWAY)
"$LOAD" "https://localhost:18443/soap" --body-file "$WORK/plain.xml" "${common[@]}" | tee "$WORK/plain.json"
echo $(( $(cpu_ticks $GATEWAY) - t0 )) >"$WORK/plain.cpu"
echo "== signed SOAP over mTLS (verify: XMLDSig, chain, binding, timestamp, replay)" >&2
t0=$(cpu_ticks $GATEWAY)
"$LOAD" "https://localhost:18443/soap" --body-file "$WORK/signed.xml" --signed-soap $N \
  --sign-key "$WORK/pki/egov-portal.key" --sign-cert "$WORK/pki/egov-portal.crt" "${common[@]}" >"$WORK/signed.out"
# (the ticks are read after the run: the signing before it leaves the gateway idle)
echo $(( $(cpu_ticks $GATEWAY) - t0 )) >"$WORK/signed.cpu"
tee "$WORK/signed.json" <"$WORK/signed.out"
python3 - "$WORK" "$TICK" <<'PY'
import json, sys
work, tick = sys.argv[1], int(sys.argv[2])
plain, signed = (json.load(open(f"{work}/{n}.json")) for n in ("plain", "signed"))
cpu = {n: int(open(f"{work}/{n}.cpu").read()) / tick for n in ("plain", "signed")}
rate = lambda r: r["ok"] / r["duration_s"]
per = lambda n, r: 1e6 * cpu[n] / max(r["requests"], 1)
print(f"unsigned: {rate(plain):,.0f}/s (p99 {plain['latency_ms']['p99']} ms)  signed: {rate(signed):,.0f}/s (p99 {signed['latency_ms']['p99']} ms)  ratio {rate(signed)/max(rate(plain),1):.2f}")
print(f"gateway CPU per exchange: unsigned {per('plain', plain):.0f} µs, signed {per('signed', signed):.0f} µs ({per('signed', signed) / max(per('plain', plain), 1):.2f}×)")
print("errors:", plain.get("errors"), signed.get("errors"))
# A refused exchange is not a measured one (a SOAP fault comes with 200).
for name, r in (("unsigned", plain), ("signed", signed)):
    if sum(r["errors"].values()) > 0.01 * max(r["requests"], 1):
        sys.exit(f"{name}: more than 1 % of the exchanges failed; the rate above is not a measurement")
PY
