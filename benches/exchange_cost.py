#!/usr/bin/env python3
"""Cost per exchange by stage, from the callgrind and DHAT runs of
benches/exchange-cost.sh (see there). Usage: exchange_cost.py DIR N VARIANT.

Instructions: total per exchange (gateway run minus direct run, each as
(cost(2N) - cost(N)) / N), then the inclusive cost of each stage's functions
(stages nest: the exchange frame includes the stages it calls; the table says
which). Allocations: each allocation stack is given to the innermost frame that
names a stage, so the allocation rows add up to the total."""
import json
import re
import subprocess
import sys

DIR, N, VARIANT = sys.argv[1], int(sys.argv[2]), sys.argv[3]

# Allocation stages: (name, pattern); a stack goes to the first frame, innermost
# first, that matches any pattern, and to that pattern's stage.
STAGES = [
    ("log record (message log)", r"observe::message_log|qaqpa_certs::msglog|ExchangeRecord::(log_record|commit|forwarding)"),
    ("measure (metrics, SLA, monitoring)", r"ExchangeRecord::finish|observe::monitoring|observe::sla|observe::metrics"),
    ("mailbox store (frame, index, redb)", r"qaqpa_mailbox::|redb::"),
    ("limit", r"exchange::limit"),
    ("identify", r"exchange::identify|headers::message_id"),
    ("route + authorize", r"exchange::route|qaqpa_routing::"),
    ("forward (request to the provider)", r"delivery::forward|body::ForwardBody|qaqpa_gateway::headers::"),
    ("upstream (pool or own connection, client codec, upstream parse)", r"hyper_util::client|hyper::client|dispatch::Client|role::Client|delivery::direct"),
    ("response (to the client)", r"exchange::respond|body::Tracked|role::Server.*encode"),
    ("face (X-Road REST; for mailbox: the /a1/ send)", r"qaqpa_gateway::faces::"),
    ("exchange frame (context, span, record)", r"exchange::run|dispatch::serve|ExchangeRecord::begin|qaqpa_gateway::server::"),
    ("accept + parse (hyper server)", r"role::Server|dispatch::Server|hyper::server|hyper_util::server"),
    ("client + upstream of the bench", r"exchange_allocs::"),
]

# Instruction rows: (name, pattern); the largest inclusive cost of a function
# whose name matches (a stage's entry point).
IR_ROWS = [
    ("server connection task: hyper server + the whole pipeline up to the upstream call", r"qaqpa_gateway::server::listener::Server::run::\{\{closure\}\}::\{\{closure\}\}$"),
    ("  parse: hyper server parses the request head", r"role::Server as hyper::proto::h1::Http1Transaction>::parse"),
    ("  exchange (dispatch, face, stages, respond)", r"qaqpa_gateway::dispatch::serve::\{\{closure\}\}"),
    ("    identify", r"qaqpa_gateway::exchange::identify::identify$"),
    ("    route", r"qaqpa_gateway::exchange::route::route_under"),
    ("    limit", r"qaqpa_gateway::exchange::limit::admit::\{\{closure\}\}"),
    ("    forward: build the request, log the forwarding, send it, await the head", r"qaqpa_gateway::delivery::forward::deliver::\{\{closure\}\}"),
    ("      request head digest (SHA-512)", r"qaqpa_gateway::headers::request_head_digest"),
    ("      pool checkout + send (hyper-util; 0 where the downstream connection drives its own)", r"hyper_util::client::legacy::client::Client<C,B>::send_request::\{\{closure\}\}"),
    ("      send on the downstream connection's own upstream connection (hyper client::conn)", r"SendRequest<B>::try_send_request::\{\{closure\}\}"),
    ("    mailbox send (face: /a1/ POST, body, envelope, store, answer)", r"async_mailbox::send::\{\{closure\}\}$"),
    ("      request body digest for the log (SHA-512)", r"ExchangeRecord::set_request_body$"),
    ("      store: frame the message, queue it, await its group commit", r"Embedded as qaqpa_mailbox::Store>::send::\{\{closure\}\}$"),
    ("    respond: exchange record, wait for the log", r"qaqpa_gateway::exchange::respond::\{\{closure\}\}"),
    ("  response: hyper server encodes the head", r"role::Server as hyper::proto::h1::Http1Transaction>::encode"),
    ("  response body to the client + measure (Tracked)", r"Tracked as http_body::Body>::poll_frame"),
    ("    measure: metrics, SLA, monitoring record", r"ExchangeRecord::finish"),
    ("upstream connection task (client codec, body out, head in)", r"hyper::client::conn::http1::upgrades::UpgradeableConnection<I,B> as core::future::future::Future>::poll$|delivery::direct::open::\{\{closure\}\}::\{\{closure\}\}$"),
    ("  request body: SHA-512 + limit (ForwardBody)", r"ForwardBody as http_body::Body>::poll_frame"),
    ("  upstream response head parse", r"role::Client as hyper::proto::h1::Http1Transaction>::parse"),
    ("mailbox store writer: group commits (redb transaction, inserts, commit + fsync)", r"qaqpa_mailbox::embedded::writer$"),
    ("  open the tables (once per transaction)", r"qaqpa_mailbox::embedded::open_tables$"),
    ("  B-tree inserts (messages, ids)", r"redb::tree_store::btree::BtreeMut<K,V>::insert$"),
    ("  commit (dirty pages, checksums, free lists, fsync)", r"redb::transactions::WriteTransaction::commit$"),
    ("monitoring writer task (JSON lines)", r"observe::monitoring::writer::\{\{closure\}\}"),
    ("message log writer: groups (JSON lines, SHA-256 chain, seals, write + fsync)", r"message_log::writer::Writer::group$"),
    ("  record lines (JSON + SHA-256 + hex link)", r"message_log::writer::Writer::(line|push)$"),
    ("  seals (ECDSA over the Merkle root; time-driven, see below)", r"qaqpa_certs::msglog::seal$"),
    ("all threads: malloc + free + realloc", r"^(malloc|free|realloc|_int_malloc|_int_free)$"),
    ("all threads: memcpy / memmove", r"__memcpy|__memmove"),
    ("all threads: SHA-512 compression", r"sha2::sha512::compress512$"),
]


def callgrind(variant, n):
    path = f"{DIR}/cg.{variant}.{n}"
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                         capture_output=True, text=True, check=True).stdout
    total, funcs = 0, {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(.*)$", line)
        if not m:
            continue
        ir, rest = int(m.group(1).replace(",", "")), m.group(2)
        if rest.startswith("PROGRAM TOTALS"):
            total = ir
            continue
        rest = re.sub(r" \[[^\]]*\]\s*$", "", rest)
        name = rest.split(":", 1)[1] if ":" in rest else rest
        funcs[name] = max(funcs.get(name, 0), ir)
    return total, funcs


def dhat(variant, n):
    data = json.load(open(f"{DIR}/dhat.{variant}.{n}"))
    frames = data["ftbl"]
    compiled = [(name, re.compile(p)) for name, p in STAGES]
    counts, blocks = {}, 0
    for pp in data["pps"]:
        stage = "other (tokio, runtime)"
        for f in pp["fs"]:
            hit = next((name for name, rx in compiled if rx.search(frames[f])), None)
            if hit:
                stage = hit
                break
        counts[stage] = counts.get(stage, 0) + pp["tbk"]
        blocks += pp["tbk"]
    return blocks, counts


def per(a, b):
    return (b - a) / N


cg = {v: [callgrind(v, n) for n in (N, 2 * N)] for v in ("direct", VARIANT)}
direct_ir = per(cg["direct"][0][0], cg["direct"][1][0])
through_ir = per(cg[VARIANT][0][0], cg[VARIANT][1][0])
print(f"## instructions per exchange ({VARIANT}, N={N})\n")
seal = re.compile(r"qaqpa_certs::msglog::seal$")
(_, s1), (_, s2) = cg[VARIANT]
seals = per(max((v for k, v in s1.items() if seal.search(k)), default=0),
            max((v for k, v in s2.items() if seal.search(k)), default=0))
print(f"client + upstream alone: {direct_ir:,.0f}; through the gateway: {through_ir:,.0f}; "
      f"gateway: {through_ir - direct_ir:,.0f}, of which seals {seals:,.0f}; "
      f"**gateway without seals: {through_ir - direct_ir - seals:,.0f}**\n")
print("(A batch is sealed every 1,000 records or 100 ms: under valgrind, ~50x slower, the")
print("100 ms come first and seals cost far more per exchange than at full speed, where one")
print("ECDSA signature per 1,000 records is ~100 instructions per record; so the seal row")
print("depends on the machine's load and is left out of the comparable total.)\n")
print("| stage (inclusive; indented rows are inside the row above) | instructions / exchange |")
print("|---|---:|")


def ir_row(variant, rx):
    (_, f1), (_, f2) = cg[variant]
    a = max((v for k, v in f1.items() if rx.search(k)), default=0)
    b = max((v for k, v in f2.items() if rx.search(k)), default=0)
    return per(a, b)


# hyper's codec and the allocator serve the bench's client and upstream too:
# their share in the direct run is taken off each row.
for name, pattern in IR_ROWS:
    rx = re.compile(pattern)
    print(f"| {name} | {ir_row(VARIANT, rx) - ir_row('direct', rx):,.0f} |")

dh = {v: [dhat(v, n) for n in (N, 2 * N)] for v in ("direct", VARIANT)}
direct_blocks = per(dh["direct"][0][0], dh["direct"][1][0])
through_blocks = per(dh[VARIANT][0][0], dh[VARIANT][1][0])
print(f"\n## allocations per exchange ({VARIANT}, N={N})\n")
print(f"client + upstream alone: {direct_blocks:.1f}; through the gateway: {through_blocks:.1f}; "
      f"**gateway: {through_blocks - direct_blocks:.1f}**\n")
print("| stage (innermost stage frame on the stack; the direct run's share taken off) | allocations / exchange |")
print("|---|---:|")
(_, c1), (_, c2) = dh[VARIANT]
(_, d1), (_, d2) = dh["direct"]
for name in [s for s, _ in STAGES] + ["other (tokio, runtime)"]:
    v = per(c1.get(name, 0), c2.get(name, 0)) - per(d1.get(name, 0), d2.get(name, 0))
    if abs(v) >= 0.05:
        print(f"| {name} | {v:.1f} |")
