# shellcheck shell=bash
# Throwaway MinIO server for tests. Source this file, call minio_start
# (which exports MSGR_TEST_S3_ENDPOINT, MSGR_TEST_S3_ACCESS_KEY,
# MSGR_TEST_S3_SECRET_KEY and MSGR_TEST_MINIO_BIN) and minio_stop from an
# EXIT trap.
#
# The server binary is built from source through the Go module proxy (the
# only place binaries can come from here) at a pinned version, which takes
# about seven minutes on a fresh machine, and cached at
# ${MSGR_CACHE_DIR:-$HOME/.cache/msgr}/bin/minio-<version> for later runs.

MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"
MINIO_TMP=""
MINIO_PID=""

# minio_bin prints the cached server binary's path, building it if needed.
minio_bin() {
	local cache="${MSGR_CACHE_DIR:-$HOME/.cache/msgr}/bin"
	local bin="$cache/minio-$MINIO_VERSION"
	if [[ ! -x $bin ]]; then
		echo "minio: building github.com/minio/minio@$MINIO_VERSION (about 7 minutes, cached afterwards in $cache)" >&2
		local gobin
		gobin=$(mktemp -d -t msgr-minio-build.XXXXXX)
		if ! GOBIN="$gobin" go install "github.com/minio/minio@$MINIO_VERSION" >&2; then
			rm -rf "$gobin"
			echo "minio: build failed" >&2
			return 1
		fi
		mkdir -p "$cache"
		mv "$gobin/minio" "$bin.tmp.$$" && mv "$bin.tmp.$$" "$bin"
		rm -rf "$gobin"
	fi
	echo "$bin"
}

minio_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# minio_live reports whether the server on port answers its readiness probe
# (with curl when installed, else by accepting connections).
minio_live() {
	if command -v curl >/dev/null; then
		curl -fsS "http://127.0.0.1:$1/minio/health/ready" >/dev/null 2>&1 &&
			curl -fsS "http://127.0.0.1:$1/minio/health/cluster" >/dev/null 2>&1
	else
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
	fi
}

# minio_start starts a fresh server on a free loopback port.
minio_start() {
	local bin
	bin=$(minio_bin)
	MINIO_TMP=$(mktemp -d -t msgr-minio.XXXXXX)
	local user="msgrtest" pass
	pass="secret-$RANDOM$RANDOM$RANDOM"
	local port console attempt ready
	for attempt in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		console=$((port + 1))
		minio_port_free "$port" && minio_port_free "$console" || continue
		MINIO_ROOT_USER=$user MINIO_ROOT_PASSWORD=$pass MINIO_BROWSER=off MINIO_UPDATE=off \
			"$bin" server --quiet --address "127.0.0.1:$port" --console-address "127.0.0.1:$console" \
			"$MINIO_TMP/data" >"$MINIO_TMP/server.log" 2>&1 &
		MINIO_PID=$!
		ready=""
		for _ in $(seq 1 300); do
			if ! kill -0 "$MINIO_PID" 2>/dev/null; then
				break
			fi
			if minio_live "$port"; then
				ready=1
				break
			fi
			sleep 0.2
		done
		[[ -n $ready ]] && break
		echo "minio: start on port $port failed (attempt $attempt)" >&2
		cat "$MINIO_TMP/server.log" >&2 || true
		kill "$MINIO_PID" 2>/dev/null || true
		wait "$MINIO_PID" 2>/dev/null || true
		MINIO_PID=""
		port=""
	done
	if [[ -z $port ]]; then
		return 1
	fi
	export MSGR_TEST_S3_ENDPOINT="127.0.0.1:$port"
	export MSGR_TEST_S3_ACCESS_KEY=$user
	export MSGR_TEST_S3_SECRET_KEY=$pass
	export MSGR_TEST_MINIO_BIN=$bin
	echo "minio: $MINIO_VERSION on 127.0.0.1:$port" >&2
}

# minio_stop stops the server started by minio_start and removes its files.
minio_stop() {
	if [[ -n $MINIO_PID ]]; then
		kill "$MINIO_PID" 2>/dev/null || true
		wait "$MINIO_PID" 2>/dev/null || true
		MINIO_PID=""
	fi
	[[ -n $MINIO_TMP ]] && rm -rf "$MINIO_TMP"
	MINIO_TMP=""
}
