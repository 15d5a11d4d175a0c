#!/usr/bin/env bash
# Seconds per training step of slicedscore against the same step written in
# JAX (the peer script of ../shared/peer), measured back to back, ROUNDS
# times: prints each cell's ours / JAX ratio (median and range over rounds).
#
#   scripts/compare-jax.sh [PEER_SCRIPT] [ROUNDS] [PYTHON]
#
# Defaults: ../shared/peer/jax_step.py, 3 rounds, /tmp/jaxenv/bin/python (set
# it up once: python3 -m venv /tmp/jaxenv && /tmp/jaxenv/bin/pip install jax
# jaxlib optax). Work: MLP energy D → 128 → 128 → 1 softplus, batch 100, Adam,
# M = 1, f32 on both sides, D = 2, 64, 784; objectives sm, ssm, ssm_vr, dsm.
set -euo pipefail
cd "$(dirname "$0")/.."
peer=${1:-../shared/peer/jax_step.py}
rounds=${2:-3}
python=${3:-/tmp/jaxenv/bin/python}
out=$(mktemp -d)
cargo build --release --quiet
for r in $(seq 1 "$rounds"); do
  "$python" "$peer" --dims 2,64,784 --reps 15 > "$out/jax_$r.csv"
  target/release/slicedscore bench scaling \
    --model '{"mlp_energy": (hidden: [128, 128], activation: Softplus)}' \
    --objectives '{"sm": ()};{"ssm": (projections: 1)};{"ssm_vr": (projections: 1)};{"dsm": (sigma: 0.1)}' \
    --dims 2,64,784 --steps 15 --precision f32 --out "$out/ours_$r" > /dev/null 2>&1
done
python3 - "$out" "$rounds" <<'PY'
import csv, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
cells = {}
for r in range(1, rounds + 1):
    jax = {(row["objective"], int(row["D"])): float(row["median_seconds_per_step"])
           for row in csv.DictReader(open(f"{out}/jax_{r}.csv"))}
    for row in csv.DictReader(open(f"{out}/ours_{r}/scaling.csv")):
        if row["median_seconds"]:
            k = (row["objective"], int(row["dim"]))
            cells.setdefault(k, []).append((float(row["median_seconds"]), jax[k]))
dims = [2, 64, 784]
print(f"ours / JAX (median over {rounds} rounds, [min–max]); ms per step ours | JAX (medians)")
print("| objective | " + " | ".join(f"D = {d}" for d in dims) + " |")
print("|---|" + "---|" * len(dims))
for o in ["sm", "ssm", "ssm_vr", "dsm"]:
    line = [o]
    for d in dims:
        pairs = cells[(o, d)]
        ratios = sorted(a / b for a, b in pairs)
        ours = statistics.median(a for a, _ in pairs) * 1e3
        theirs = statistics.median(b for _, b in pairs) * 1e3
        line.append(f"{statistics.median(ratios):.2f} [{ratios[0]:.2f}–{ratios[-1]:.2f}] ({ours:.3g} \\| {theirs:.3g} ms)")
    print("| " + " | ".join(line) + " |")
PY
