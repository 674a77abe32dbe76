#!/usr/bin/env bash
# The sustained figure as senders see it: `brevdue serve` on its own (one or more instances),
# driven by `brevdue loadgen --target` from another process. Reproduces the README's
# "Sustained, from outside" table.
#
#   benches/loadgen-outside.sh --letters 200000 --size 10KB
#   STORE=postgres://postgres@127.0.0.1/brevdue_outside QUEUE='amqp://guest:guest@127.0.0.1:5672/%2f?prefix=outside.' \
#     CEILING_STORE=postgres://postgres@127.0.0.1/brevdue_ceiling INSTANCES=2 benches/loadgen-outside.sh --letters 200000
#
# The ceilings' store alone runs on CEILING_STORE (a second scratch database, never the
# gateway's: its letters would look waiting) or SQLite in the scratch directory; the queue
# alone on QUEUE with a prefix of its own, or the embedded queue.
# Every argument goes to `brevdue loadgen`; SERVE_CONFIG names a brevdue.toml for the gateways. The data directory is fresh and removed at the end
# (KEEP=1 keeps it); a PostgreSQL database given in STORE must be a scratch one (it gets the
# run's letters), and the queues of a RabbitMQ prefix are deleted with `brevdue` gone.
set -euo pipefail
BIN=${BREVDUE_BIN:-target/release/brevdue}
PORT=${PORT:-50151}
ADMIN=${ADMIN:-9281}
INSTANCES=${INSTANCES:-1}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/brevdue-outside.XXXXXX")
BACKENDS=()
[ -n "${STORE:-}" ] && BACKENDS+=(--store "$STORE")
[ -n "${QUEUE:-}" ] && BACKENDS+=(--queue "$QUEUE")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT

"$BIN" loadgen --write-recipients "$DIR/citizens.csv" >/dev/null
"$BIN" registry import --data-dir "$DIR/data" "${BACKENDS[@]}" --recipients "$DIR/citizens.csv" >/dev/null
"$BIN" senders add --data-dir "$DIR/data" "${BACKENDS[@]}" --cvr 29403473 \
  --name "Loadgen Styrelsen" --kind public --out "$DIR/sender" >/dev/null
TARGETS=()
for i in $(seq 0 $((INSTANCES - 1))); do
  "$BIN" serve ${SERVE_CONFIG:+--config "$SERVE_CONFIG"} --data-dir "$DIR/data" "${BACKENDS[@]}" --listen "127.0.0.1:$((PORT + i))" \
    --admin-listen "127.0.0.1:$((ADMIN + i))" >"$DIR/serve-$i.log" 2>&1 &
  PIDS+=($!)
  TARGETS+=(--target "127.0.0.1:$((PORT + i))" --metrics "http://127.0.0.1:$((ADMIN + i))/metrics" --server-pid "$!")
done
for i in $(seq 0 $((INSTANCES - 1))); do
  for _ in $(seq 150); do
    curl -sf "http://127.0.0.1:$((ADMIN + i))/healthz" >/dev/null && break
    sleep 0.2
  done
done
CEILINGS=()
[ -n "${CEILING_STORE:-}" ] && CEILINGS+=(--store "$CEILING_STORE")
[ -n "${QUEUE:-}" ] && CEILINGS+=(--queue "$QUEUE")
"$BIN" loadgen "${TARGETS[@]}" --cert-dir "$DIR/sender" --scratch-dir "$DIR" "${CEILINGS[@]}" "$@"
# Disk use of the run (the letters, their rows and events, the queue, the mailbox outbox).
echo "disk use of the data directory after the run:"
du -sb "$DIR/data"/* 2>/dev/null | sort -k2
# The gateways' queues of a RabbitMQ prefix go with the run (the broker's file limit is small).
PREFIX=$(printf '%s' "${QUEUE:-}" | sed -n 's/.*[?&]prefix=\([^&]*\).*/\1/p')
if [ -n "$PREFIX" ] && command -v rabbitmqctl >/dev/null; then
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
  # rabbitmqctl reads standard input: without </dev/null the first delete would swallow the
  # rest of the list and leave those queues behind.
  rabbitmqctl -q list_queues name | grep "^$PREFIX" | while read -r q; do rabbitmqctl -q delete_queue "$q" </dev/null >/dev/null; done
fi
