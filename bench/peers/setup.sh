#!/usr/bin/env bash
# Create one virtual environment per peer engine, OUTSIDE the repository, for bench/peers/run_peer.py.
#
#   bash bench/peers/setup.sh                 # all peers
#   bash bench/peers/setup.sh fast-plaid qdrant
#   PEERS_ROOT=/somewhere bash bench/peers/setup.sh
#   FORCE=1 bash bench/peers/setup.sh pylate  # delete and recreate
#
# Layout: $PEERS_ROOT/<peer>/venv  (PEERS_ROOT defaults to /work/peers). colmax's own .venv is
# never touched. Idempotent: a venv whose stamp file matches the pinned requirement line is left
# alone.
#
# Why torch 2.11.0 from PyPI (the CUDA build, ~5 GB per venv with its nvidia-*/cuda-* wheels):
# fast-plaid and xtr-warp-rs publish wheels built per torch version (the version suffix .2110 =
# torch 2.11.0, .2100 = 2.10, .290 = 2.9 ...), none for torch 2.13, and their Rust extensions link
# libtorch's CUDA libraries (xtr_warp_rs*.so needs libc10_cuda.so), so the CPU-only torch 2.13.0
# wheel on this machine does not load them, and download.pytorch.org (CPU wheels) is not
# reachable from here. The CUDA libraries are only loaded, never used: everything runs on the CPU.
set -euo pipefail

PEERS_ROOT="${PEERS_ROOT:-/work/peers}"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Pinned sets found working here (2026-11). psutil: peak-RSS measurement in run_peer.py.
declare -A REQS=(
  [fast-plaid]="torch==2.11.0 fast-plaid==1.7.0.2110 psutil"
  [xtr-warp-rs]="torch==2.11.0 xtr-warp-rs==2.1.0.2110 psutil"
  # pylate 1.6.0 pins fast-plaid<=1.4.6.2110 (its PLAID index) and has voyager as an extra.
  # voyager 2.2.x's add_items/query take only a 2-D ndarray; pylate 1.6.0 passes a list of
  # vectors ("incompatible function arguments"), so voyager stays at 2.1.0 (2.0.9 works too).
  [pylate]="torch==2.11.0 pylate[voyager]==1.6.0 fast-plaid==1.4.6.2110 voyager==2.1.0 psutil"
  [qdrant]="qdrant-client==1.20.0 numpy psutil"
)
ORDER=(fast-plaid xtr-warp-rs pylate qdrant)

say() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=("${ORDER[@]}")

df -h "$(dirname "$PEERS_ROOT")" | tail -1 | awk '{print "[setup] disk free before: " $4}'
for peer in "${peers[@]}"; do
  reqs="${REQS[$peer]:-}"
  if [ -z "$reqs" ]; then
    echo "unknown peer '$peer' (known: ${ORDER[*]})" >&2
    exit 2
  fi
  venv="$PEERS_ROOT/$peer/venv"
  stamp="$venv/.peer-reqs"
  if [ "${FORCE:-0}" = 1 ] && [ -d "$venv" ]; then
    say "$peer: FORCE=1, removing $venv"
    rm -rf "$venv"
  fi
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$reqs" ]; then
    say "$peer: $venv already has: $reqs (skipped)"
    continue
  fi
  say "$peer: creating $venv with: $reqs"
  mkdir -p "$PEERS_ROOT/$peer"
  [ -d "$venv" ] || "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install $reqs 2>&1 | grep -v "is ignored: it is neither" | tail -n 3
  "$venv/bin/python" - "$peer" <<'EOF'
import importlib.metadata as md, sys
peer = sys.argv[1]
names = {"fast-plaid": ["fast-plaid", "torch"], "xtr-warp-rs": ["xtr-warp-rs", "torch"],
         "pylate": ["pylate", "fast-plaid", "voyager", "torch", "transformers",
                    "sentence-transformers"],
         "qdrant": ["qdrant-client"]}[peer]
have = {d.metadata["Name"].lower() for d in md.distributions()}
cuda = sorted(n for n in have if n.startswith(("nvidia-", "cuda-", "triton")))
print("  installed:", ", ".join(f"{n}=={md.version(n)}" for n in names + ["numpy", "psutil"]))
print("  CUDA packages:", len(cuda), "(" + ", ".join(cuda[:6]) + (" ..." if len(cuda) > 6 else "") + ")")
EOF
  printf '%s' "$reqs" > "$stamp"
  du -sh "$venv" | awk '{print "  venv size: " $1}'
done
df -h "$(dirname "$PEERS_ROOT")" | tail -1 | awk '{print "[setup] disk free after: " $4}'
say "done; run e.g.: $PEERS_ROOT/fast-plaid/venv/bin/python $HERE/run_peer.py --help"
