#!/usr/bin/env bash
# Side-by-side comparison on this machine, one broker after another, same
# tool, same steps (issue 7):
#   1. Mosquitto (Debian package; set_tcp_nodelay true, persistence off)   scenario pairs
#   2. bare mochi-mqtt v2.7.9 with defaults (msgrbench mochi)              scenario pairs
#   3. msgr, persistence off: plain MQTT on a granted generic topic tree   scenario pairs
#      (bench/#, anonymous clients; the chat core and store are not on
#      this path, which is what "persistence off" means for msgr)
#   4. msgr on PostgreSQL: durable 1:1 chat, PUBACK after commit           scenario chat
# and appends a dated table with the machine to docs/BENCHMARKS.md.
#
#   bench/compare.sh                    # 30 s steps: 1k,2k,5k,10k,15k,20k msgs/s (about 20 minutes)
#   STEP_DUR=5s STEPS=2000,5000 bench/compare.sh    # quick
#
# Environment: STEPS, STEP_DUR, WARMUP, PAIRS (100), QOS (1; "0 1" runs both
# for the raw brokers), OUT (results directory), NO_DOC=1 (do not touch
# docs/BENCHMARKS.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

STEPS=${STEPS:-1000,2000,5000,10000,15000,20000}
STEP_DUR=${STEP_DUR:-30s}
WARMUP=${WARMUP:-5s}
PAIRS=${PAIRS:-100}
QOS=${QOS:-1}
OUT=${OUT:-$(mktemp -d -t msgr-compare.XXXXXX)}
mkdir -p "$OUT"

if ! command -v mosquitto >/dev/null && [[ ! -x /usr/sbin/mosquitto ]]; then
	if [[ $(id -u) -eq 0 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto >/dev/null
	else
		echo "compare: mosquitto is not installed (apt-get install mosquitto)" >&2
		exit 1
	fi
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)

# 50k-connection runs and many clients need descriptors; raise what we may.
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# msgrd's per-user message/command rates and per-address connection rate
# are abuse limits (docs/SECURITY.md), not capacity: a benchmark's one
# address and its senders would hit them, so they are off here.
NO_LIMITS=(-message-rate 0 -command-rate 0 -conn-rate 0)

BIN=$OUT/bin
mkdir -p "$BIN"
go build -o "$BIN/msgrd" ./cmd/msgrd
go build -o "$BIN/msgrbench" ./cmd/msgrbench

BROKER_PID=""
cleanup() {
	if [[ -n $BROKER_PID ]]; then
		kill "$BROKER_PID" 2>/dev/null || true
		wait "$BROKER_PID" 2>/dev/null || true
	fi
	postgres_stop
}
trap cleanup EXIT

free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		postgres_port_free "$p" && { echo "$p"; return; }
	done
}

wait_port() {
	local i
	for i in $(seq 1 100); do
		postgres_port_free "$1" || return 0
		sleep 0.1
	done
	echo "compare: nothing listens on port $1" >&2
	return 1
}

stop_broker() {
	kill "$BROKER_PID"
	wait "$BROKER_PID" 2>/dev/null || true
	BROKER_PID=""
}

bench() { # label port args...
	local label=$1 port=$2
	shift 2
	echo "compare: $label" >&2
	"$BIN/msgrbench" run -label "$label" -addr "127.0.0.1:$port" -broker-pid "$BROKER_PID" \
		-steps "$STEPS" -step-dur "$STEP_DUR" -warmup "$WARMUP" "$@" | tee -a "$OUT/runs.txt"
}

JSONS=()

# 1. Mosquitto
PORT=$(free_port)
cat >"$OUT/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
EOF
"$MOSQUITTO" -c "$OUT/mosquitto.conf" >"$OUT/mosquitto.log" 2>&1 &
BROKER_PID=$!
wait_port "$PORT"
for q in $QOS; do
	bench "Mosquitto $("$MOSQUITTO" -h 2>&1 | head -1 | awk '{print $3}')" "$PORT" -scenario pairs -qos "$q" -pairs "$PAIRS" -json "$OUT/1-mosquitto-q$q.json"
	JSONS+=("$OUT/1-mosquitto-q$q.json")
done
stop_broker

# 2. bare mochi
PORT=$(free_port)
"$BIN/msgrbench" mochi -addr "127.0.0.1:$PORT" 2>"$OUT/mochi.log" &
BROKER_PID=$!
wait_port "$PORT"
for q in $QOS; do
	bench "bare mochi v2.7.9" "$PORT" -scenario pairs -qos "$q" -pairs "$PAIRS" -json "$OUT/2-mochi-q$q.json"
	JSONS+=("$OUT/2-mochi-q$q.json")
done
stop_broker

# 3. msgr, persistence off (generic topics; embedded store idle)
PORT=$(free_port)
"$BIN/msgrd" -data-dir "$OUT/msgr-data" -mqtt-addr "127.0.0.1:$PORT" -ws-addr= -http-addr= \
	-allow-anonymous -topic-grants 'bench/#=rw' -log-level warn "${NO_LIMITS[@]}" 2>"$OUT/msgrd-generic.log" &
BROKER_PID=$!
wait_port "$PORT"
for q in $QOS; do
	bench "msgr, persistence off (generic topics)" "$PORT" -scenario pairs -qos "$q" -pairs "$PAIRS" -json "$OUT/3-msgr-generic-q$q.json"
	JSONS+=("$OUT/3-msgr-generic-q$q.json")
done
stop_broker

# 4. msgr on PostgreSQL, durable chat
postgres_start
PG_ADDR=${MSGR_TEST_DATABASE_URL#*@}
PG_ADDR=${PG_ADDR%%/*}
"$BIN/msgrd" keys generate "$OUT/master.key" >&2
"$BIN/msgrbench" users -database-url "$MSGR_TEST_DATABASE_URL" -master-key-file "$OUT/master.key" -names 'bencha%d,benchb%d' -n "$PAIRS" >&2
PORT=$(free_port)
"$BIN/msgrd" -database-url "$MSGR_TEST_DATABASE_URL" -master-key-file "$OUT/master.key" -mqtt-addr "127.0.0.1:$PORT" -ws-addr= -http-addr= \
	-log-level warn "${NO_LIMITS[@]}" 2>"$OUT/msgrd-postgres.log" &
BROKER_PID=$!
wait_port "$PORT"
bench "msgr on PostgreSQL (durable chat)" "$PORT" -scenario chat -pairs "$PAIRS" -db-addr "$PG_ADDR" -json "$OUT/4-msgr-postgres-chat.json"
JSONS+=("$OUT/4-msgr-postgres-chat.json")
stop_broker

TABLE=$OUT/table.md
{
	echo
	echo "## bench/compare.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, $(uname -sr); $("$MOSQUITTO" -h 2>&1 | head -1); $(go version | awk '{print $3}'); code $(git rev-parse --short HEAD)."
	echo "Steps: $STEPS msgs/s, $STEP_DUR each after a $WARMUP warm-up; $PAIRS pairs; 64-byte payloads (pairs)."
	echo "Command: \`STEPS=$STEPS STEP_DUR=$STEP_DUR WARMUP=$WARMUP PAIRS=$PAIRS QOS=\"$QOS\" bench/compare.sh\`"
	echo
	"$BIN/msgrbench" table "${JSONS[@]}"
} >"$TABLE"
cat "$TABLE"
if [[ -z ${NO_DOC:-} ]]; then
	cat "$TABLE" >>docs/BENCHMARKS.md
	echo "compare: table appended to docs/BENCHMARKS.md; raw results in $OUT" >&2
fi
