#!/usr/bin/env bash
# The first thing to run on a machine with a GPU (from the repository root, in the project's venv):
# the suite's CUDA tests, the GPU's noise fingerprint, how far --fast, bf16 and TF32 move
# certificates, and, with two GPUs or more, NCCL runs of certify, of CAT-RS training and the
# refusal of votes under torchrun. Paste its output into docs/performance.md.
#     bash benchmarks/gpu_check.sh
set -euo pipefail
out=$(mktemp -d)
python - <<'PY'
import torch
from smoothcert.runtime.seeding import noise_fingerprint
from smoothcert.smoothing.fast import native_bf16
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)")
print(f"noise fingerprint: {noise_fingerprint('cuda:0')}; native bf16: {native_bf16(torch.device('cuda:0'))}")
g = torch.Generator(device="cuda").manual_seed(7)
print("first noise values of seed 7 in a CIFAR block:", torch.randn(100, 3, 32, 32, generator=g, device="cuda").flatten()[[0, 1, 307199]].tolist())
PY
SMOOTHCERT_TEST_CUDA=1 python -m pytest -q -m cuda tests/test_cuda.py
smoothcert train --epochs 2 --sigma 0.5 --device cuda --quiet --out-dir "$out/model"
for options in "" "--tf32" "--fast" "--bf16"; do
  name=$(echo "plain$options" | tr -d ' -')
  /usr/bin/time -f "$name: %e s" smoothcert certify --checkpoint "$out/model/checkpoint.pt" --n 100000 --skip 20 --max 50 --quiet \
      --device cuda $options --outfile "$out/$name.tsv"
done
python - "$out" <<'PY'
import sys
from smoothcert.storage.tsv import read_results
plain = read_results(f"{sys.argv[1]}/plain.tsv")
for name in ("plaintf32", "plainfast", "plainbf16"):
    rows = read_results(f"{sys.argv[1]}/{name}.tsv")
    moved = sum(a["predict"] != b["predict"] or abs(a["radius"] - b["radius"]) > 1e-3 for a, b in zip(plain, rows))
    print(f"{name}: {moved} of {len(rows)} certificates differ from plain float32")
PY
smoothcert certify --checkpoint "$out/model/checkpoint.pt" --n 10000 --skip 20 --max 50 --quiet --device cuda --radii auto --compile \
    --outfile "$out/grid.tsv" && echo "grid certification (compiled, early stopping) on CUDA: done"
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  torchrun --standalone --nproc_per_node 2 -m smoothcert certify --checkpoint "$out/model/checkpoint.pt" --N 100000 --skip 20 \
      --max-count 50 --quiet --outfile "$out/two.tsv"
  python - "$out" <<'PY'
import sys
from smoothcert.storage.tsv import read_results
strip = lambda p: [{k: v for k, v in r.items() if k != "time"} for r in read_results(p)]
print("two GPUs certify the rows of one:", strip(f"{sys.argv[1]}/two.tsv") == strip(f"{sys.argv[1]}/plain.tsv") or "NO (compare)")
PY
  smoothcert votes --checkpoint "$out/model/checkpoint.pt" --n 16 --outfile "$out/votes.tsv" --quiet
  torchrun --standalone --nproc_per_node 2 -m smoothcert train --method catrs --k 2 --lam 0.5 --eps 1.0 --catrs-votes "$out/votes.tsv" \
      --sigma 0.5 --epochs 1 --quiet --out-dir "$out/catrs" && echo "CAT-RS under NCCL: trained"
  torchrun --standalone --nproc_per_node 2 -m smoothcert votes --checkpoint "$out/model/checkpoint.pt" --outfile "$out/x.tsv" \
      || echo "votes under torchrun: refused, as it should be"
fi
