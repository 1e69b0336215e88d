#!/usr/bin/env bash
# benchmarks/gpu.sh: the GPU figures, on a machine with one GPU, in at most 8 minutes:
#   * every family's `genjax bench` (benchmarks/config.py), float32 and bfloat16, with the plain-JAX
#     twins' ratios, compile times, MFU against the measured matmul peak and peak device memory;
#   * the data-parallel scaling table (benchmarks/scaling.py over the devices there are);
#   * k-fold cross-validation, folds vmapped versus looped (benchmarks/kfold.py);
#   * the GPT step's MFU and cached sampling (benchmarks/gpt_step.py, float32 and bfloat16).
# Writes benchmarks/results/<device>/ (JSON per result, table.md) and benchmarks/results/<device>.json
# (all of it), and prints the markdown table the README quotes.
#
# Python: $PYTHON, else .venv-gpu/bin/python if it exists, else python3. It needs jax with the GPU
# backend and genjax's dependencies; genjax itself is taken from this checkout (PYTHONPATH).
# Without a network, bring missing packages as wheels in .whl/ (installed into /tmp/genjax-site
# and put on PYTHONPATH first). The H200 machines lent here (image of 2026-11: Python 3.12, jax
# 0.11 with CUDA 13, flax, optax, orbax, chex, scipy, scikit-learn, matplotlib, tqdm, pyyaml,
# protobuf) lack ml_collections and tensorboardX (and may lack flatbuffers, which genjax's kept
# programs need: without it every program is traced, as before); on the networked machine, once:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 -d .whl \
#     ml_collections==1.1.0 tensorboardX==2.6.5 flatbuffers==25.12.19
# (0.2 MB), then run `benchmarks/gpu.sh` there with .whl carried along.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x .venv-gpu/bin/python ]; then PY=.venv-gpu/bin/python; else PY=python3; fi
fi
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/genjax-site .whl/*.whl
  export PYTHONPATH="/tmp/genjax-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 GENJAX_CACHE_DIR=${GENJAX_CACHE_DIR:-/tmp/genjax-xla}
if ! "$PY" -c 'import jax' 2>/dev/null; then
  echo "gpu.sh: $PY cannot import jax; set PYTHON to a Python with jax's GPU backend (see the header)." >&2
  exit 2
fi
device=$("$PY" -c 'import jax; d = jax.devices()[0]; print(d.platform if d.platform == "cpu" else d.device_kind.replace(" ", "-").lower())')
if [ "$("$PY" -c 'import jax; print(jax.default_backend())')" = cpu ]; then
  echo "gpu.sh: jax sees no accelerator (backend cpu); run it where one is, or see the header." >&2
  exit 2
fi
out=benchmarks/results/$device
mkdir -p "$out"
t0=$(date +%s)
left() { echo $(( 480 - ($(date +%s) - t0) )); }

echo "== every family: genjax bench, float32 and bfloat16 (budget 300 s)"
timeout 300 "$PY" benchmarks/bench_all.py --dtypes float32,bfloat16 --epochs 3 --out "$out/bench" || echo "bench_all stopped at its budget"
echo "== data-parallel scaling"
timeout $(( $(left) > 60 ? 60 : $(left) )) "$PY" benchmarks/scaling.py --devices "$("$PY" -c 'import jax; print(",".join(str(2**i) for i in range(8) if 2**i <= jax.device_count()))')" --epochs 2 --reps 2 --out "$out" || echo "scaling stopped"
echo "== k-fold: vmap versus loop"
timeout $(( $(left) > 60 ? 60 : $(left) )) "$PY" benchmarks/kfold.py --epochs 20 --devices 1 --out "$out" || echo "kfold stopped"
echo "== GPT step: MFU and cached sampling"
for dt in float32 bfloat16; do
  timeout $(( $(left) > 40 ? 40 : $(left) )) "$PY" benchmarks/gpt_step.py --steps 20 --reps 5 --dtype $dt --out "$out" || echo "gpt_step $dt stopped"
done
"$PY" - "$out" "$device" <<'EOF'
import json, sys
from pathlib import Path
out, device = Path(sys.argv[1]), sys.argv[2]
res = {p.stem: json.loads(p.read_text()) for p in sorted(out.rglob("*.json"))}
Path(f"benchmarks/results/{device}.json").write_text(json.dumps(res, indent=2) + "\n")
table = out / "bench" / "table.md"
print(table.read_text() if table.exists() else "(no bench table)")
print(f"wrote benchmarks/results/{device}.json")
EOF
echo "gpu.sh: $(( $(date +%s) - t0 )) s"
