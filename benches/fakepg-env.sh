# shellcheck shell=bash
# Sourced by benches/instructions (and any script that needs the fake server): builds the
# bench programs when missing (benches/run --smoke), starts the fake server on a Unix socket
# in a temporary directory, stopped and removed at exit. Sets ROOT, OUT, DIR, FAKE (its pid)
# and PORT.
#
#   source "$(dirname "$0")/fakepg-env.sh" NAME [fakepg arguments...]   (NAME for messages)

NAME=$1
shift
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/target/bench
FAKEPG=$ROOT/target/fakepg/release/fakepg

if [ ! -x "$OUT/fw_bench" ] || [ ! -x "$OUT/pq_bench" ] || [ ! -x "$OUT/raw_bench" ] || [ ! -x "$FAKEPG" ]; then
    "$ROOT/benches/run" --smoke --no-pg --sections client >/dev/null
fi

DIR=$(mktemp -d /tmp/fw-bench.XXXXXX)
"$FAKEPG" --port 0 --unix-dir "$DIR" --watch-pid $$ "$@" > "$DIR/fakepg.out" 2>/dev/null &
FAKE=$!
trap 'kill $FAKE 2>/dev/null || true; rm -rf "$DIR"' EXIT
for _ in $(seq 1 100); do
    grep -q '^FAKEPG_PORT=' "$DIR/fakepg.out" 2>/dev/null && break
    sleep 0.1
done
PORT=$(sed -n 's/^FAKEPG_PORT=//p' "$DIR/fakepg.out")
[ -n "$PORT" ] || { echo "$NAME: the fake server did not start" >&2; exit 1; }
