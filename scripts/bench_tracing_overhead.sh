#!/usr/bin/env bash
# Tracing overhead, two ways, in one run:
# 1. the engine step loop with tracing disabled at run time vs tracing code not built
#    (`--no-default-features`, the `journey` feature off): engine-core's step_overhead bench;
# 2. throughput and TTFT at 8 streams through both services on SmolLM2 with tracing off, journey
#    on (steps at 0.01), and everything on: the tests crate's load bench (which also runs the
#    stream-count table, against llama-server when LLAMA_SERVER is set).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# The build without the feature gets its own target dir, so it never replaces the default
# binaries (the e2e tests and the load bench need tracing built in).
run() {
  if [ "${1:-}" = "--no-default-features" ]; then
    CARGO_TARGET_DIR="$root/target/no-journey" \
      cargo bench -q -p engine-core --bench step_overhead --no-default-features 2>/dev/null | tail -n 1
  else
    cargo bench -q -p engine-core --bench step_overhead 2>/dev/null | tail -n 1
  fi
}
run >/dev/null
run --no-default-features >/dev/null
# Alternate the two builds (A B A B ...) so drift on a shared machine hits both alike.
results=()
for _ in 1 2 3 4; do
  results+=("$(run)" "$(run --no-default-features)")
done
python3 - "${results[@]}" <<'PY'
import json, sys
rows = [json.loads(a) for a in sys.argv[1:]]
built = [r for r in rows if r["journey_feature"]]
absent = [r for r in rows if not r["journey_feature"]]
print("engine step, tiny model, 16 sequences: tracing built but off vs not built (4 runs each)")
for k in ("per_step_us_min", "per_step_us_median"):
    b, a = min(r[k] for r in built), min(r[k] for r in absent)
    print(f"  best {k:20} {b:9.1f} us {a:9.1f} us  {b / a:.4f}x")
PY
[ "${1:-}" = "--steps-only" ] && exit 0
cargo bench -q -p journey-tests --bench load 2>/dev/null
