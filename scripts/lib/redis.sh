# shellcheck shell=bash
# Throwaway Redis server for tests. Source this file, call redis_start
# (which exports MSGR_TEST_REDIS_URL) and redis_stop from an EXIT trap.
#
# The server listens only on 127.0.0.1 on a free port, keeps nothing on
# disk (no RDB snapshots, no AOF) and runs in its own temp dir. Tests that
# restart Redis start their own server (see cluster tests); this one is
# shared by the whole run and isolated per test by key prefixes.

REDIS_TMP=""
REDIS_PID=""

# redis_install installs redis-server with apt when running as root.
redis_install() {
	if [[ $(id -u) -ne 0 ]]; then
		echo "redis: redis-server not found." >&2
		echo "redis: install it (Debian: sudo apt-get install redis-server) or set MSGR_TEST_REDIS_URL." >&2
		return 1
	fi
	echo "redis: installing redis-server with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q redis-server
}

redis_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# redis_start starts a fresh server and exports MSGR_TEST_REDIS_URL.
redis_start() {
	if ! command -v redis-server >/dev/null; then
		redis_install
	fi
	REDIS_TMP=$(mktemp -d -t msgr-redis.XXXXXX)
	local port attempt
	for attempt in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		redis_port_free "$port" || continue
		redis-server --bind 127.0.0.1 --port "$port" --dir "$REDIS_TMP" --save '' --appendonly no \
			--daemonize no --logfile "$REDIS_TMP/redis.log" >/dev/null 2>&1 &
		REDIS_PID=$!
		local i
		for i in $(seq 1 150); do
			if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
				export MSGR_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
				echo "redis: $(redis-server --version | cut -d' ' -f1-3) on 127.0.0.1:$port" >&2
				return 0
			fi
			kill -0 "$REDIS_PID" 2>/dev/null || break
			sleep 0.1
		done
		echo "redis: start on port $port failed (attempt $attempt)" >&2
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
		REDIS_PID=""
	done
	cat "$REDIS_TMP/redis.log" >&2 || true
	return 1
}

# redis_stop stops the server started by redis_start and removes its files.
redis_stop() {
	if [[ -n $REDIS_PID ]]; then
		kill "$REDIS_PID" 2>/dev/null || true
		wait "$REDIS_PID" 2>/dev/null || true
		REDIS_PID=""
	fi
	if [[ -n $REDIS_TMP ]]; then
		rm -rf "$REDIS_TMP"
		REDIS_TMP=""
	fi
}
