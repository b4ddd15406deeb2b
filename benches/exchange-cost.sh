#!/usr/bin/env bash
# Instructions and allocations per exchange, by stage (issue 20's cost budget).
#
#   benches/exchange-cost.sh [N] [VARIANT]     # N exchanges (default 2000), VARIANT sync|async|limits|mailbox
#
# EXCHANGE_CONNECTIONS=32 sends over that many connections at once (the baseline
# too), so group commits carry many messages as under load; the default, one,
# makes every durable send a commit of its own.
#
# Runs the `exchange_allocs` bench binary (gateway, upstream and client in one
# process, one thread) under valgrind: callgrind for instructions, DHAT for
# allocations, each with N and 2N exchanges, so that (cost(2N) − cost(N)) / N is
# the steady cost of one exchange without the setup. The same with the client
# talking to the upstream directly is the baseline subtracted from the total.
# Stages are attributed by the innermost stage function on each stack
# (benches/exchange_cost.py). Instruction and allocation counts do not depend on
# the machine's load, unlike timings. Loopback only; takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
VARIANT=${2:-sync}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
# EXCHANGE_BIN=path measures another build of the bench (an A/B in one session).
BIN=${EXCHANGE_BIN:-}
[ -n "$BIN" ] || BIN=$(cargo bench -q -p qaqpa-benches --bench exchange_allocs --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "exchange_allocs" in m["executable"]: print(m["executable"])' | tail -1)
OUT=${EXCHANGE_OUT:-$(mktemp -d /tmp/qaqpa-cost.XXXXXX)}
[ -n "${EXCHANGE_OUT:-}" ] || trap 'rm -rf "$OUT"' EXIT
for v in direct "$VARIANT"; do
  for n in "$N" $((2 * N)); do
    EXCHANGE_ONLY=$v valgrind -q --tool=callgrind --callgrind-out-file="$OUT/cg.$v.$n" "$BIN" "$n" >/dev/null
    EXCHANGE_ONLY=$v valgrind -q --tool=dhat --num-callers=64 --dhat-out-file="$OUT/dhat.$v.$n" "$BIN" "$n" >/dev/null 2>&1
  done
done
python3 benches/exchange_cost.py "$OUT" "$N" "$VARIANT"
