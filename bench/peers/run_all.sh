#!/usr/bin/env bash
# Run every peer (sequentially: measurements must not overlap) on one vectors folder.
#   bash bench/peers/run_all.sh [VECTORS_DIR] [OUT_DIR] [engine ...]
# Defaults: bench/out/vectors/scifact-pca128, bench/out/peers, all engines. Extra run_peer.py
# options can be given in RUN_PEER_ARGS. Each engine runs in its own venv (setup.sh).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERS_ROOT="${PEERS_ROOT:-/work/peers}"
VECTORS="${1:-$REPO/bench/out/vectors/scifact-pca128}"
OUT="${2:-$REPO/bench/out/peers}"
shift $(( $# > 2 ? 2 : $# ))
engines=("$@")
[ ${#engines[@]} -eq 0 ] && engines=(exact xtr-warp-rs fast-plaid pylate-plaid pylate-voyager qdrant)
mkdir -p "$OUT"
for e in "${engines[@]}"; do
  extra=()
  case "$e" in
    fast-plaid) venv=fast-plaid ;;
    xtr-warp-rs) venv=xtr-warp-rs ;;
    pylate-plaid) venv=pylate ;;
    # as shipped, then with the id-mapping pickles loaded once (see engines/pylate_voyager.py)
    pylate-voyager) venv=pylate; extra=(--params '[{}, {"cache_mappings": true}]' --qps-queries 100) ;;
    # local mode scores exhaustively in Python: a 30-query QPS run is enough
    qdrant) venv=qdrant; extra=(--qps-queries 30) ;;
    exact) venv=qdrant ;;
    *) echo "unknown engine $e" >&2; continue ;;
  esac
  py="$PEERS_ROOT/$venv/venv/bin/python"
  if [ ! -x "$py" ]; then
    echo "{\"engine\": \"$e\", \"error\": \"no venv at $PEERS_ROOT/$venv/venv (run bench/peers/setup.sh)\"}" > "$OUT/$e.json"
    continue
  fi
  echo "=== $e ($(date +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
  # shellcheck disable=SC2086
  "$py" "$HERE/run_peer.py" --engine "$e" --vectors "$VECTORS" --out "$OUT/$e.json" \
    "${extra[@]}" ${RUN_PEER_ARGS:-} 2>&1 | grep -v -E "it/s\]|s/it\]|Warning|warn\(" | tail -n 12
done
echo "=== done $(date +%H:%M:%S)"
