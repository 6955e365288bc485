# shellcheck shell=bash
# Throwaway PostgreSQL server for tests. Source this file, call
# postgres_start (which exports MSGR_TEST_DATABASE_URL) and postgres_stop
# from an EXIT trap.
#
# The server runs as the postgres user because PostgreSQL refuses to run as
# root, listens only on 127.0.0.1 on a free port, keeps its unix socket in
# its own temp dir, and keeps fsync and synchronous_commit on so that tests
# and benchmarks see production commit costs.

POSTGRES_TMP=""
POSTGRES_BIN=""

# postgres_bindir prints the newest /usr/lib/postgresql/*/bin holding initdb.
postgres_bindir() {
	local dirs
	dirs=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' || true)
	[[ -n $dirs ]] || return 1
	dirname "$(sort -V <<<"$dirs" | tail -n 1)"
}

# postgres_install installs the server binaries with apt when running as root.
postgres_install() {
	if [[ $(id -u) -ne 0 ]]; then
		echo "postgres: server binaries not found (no /usr/lib/postgresql/*/bin/initdb)." >&2
		echo "postgres: install them (Debian: sudo apt-get install postgresql) or set MSGR_TEST_DATABASE_URL." >&2
		return 1
	fi
	echo "postgres: installing server binaries with apt-get" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q postgresql
}

# postgres_as runs a command as the postgres user when we are root (the
# server refuses root) and as ourselves otherwise, from the server's temp dir
# so that the postgres user can always read its working directory.
postgres_as() {
	if [[ $(id -u) -eq 0 ]]; then
		(cd "$POSTGRES_TMP" && runuser -u postgres -- "$@")
	else
		(cd "$POSTGRES_TMP" && "$@")
	fi
}

# postgres_port_free reports whether nothing listens on 127.0.0.1:$1.
postgres_port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# postgres_start starts a fresh server and exports MSGR_TEST_DATABASE_URL
# pointing at an empty database msgr_test on it.
postgres_start() {
	if ! POSTGRES_BIN=$(postgres_bindir); then
		postgres_install
		POSTGRES_BIN=$(postgres_bindir)
	fi

	POSTGRES_TMP=$(mktemp -d -t msgr-postgres.XXXXXX)
	if [[ $(id -u) -eq 0 ]]; then
		chown postgres: "$POSTGRES_TMP"
	fi
	postgres_as "$POSTGRES_BIN/initdb" -D "$POSTGRES_TMP/data" -U postgres \
		--auth=trust --encoding=UTF8 --no-locale --no-sync >"$POSTGRES_TMP/initdb.log" 2>&1 || {
		cat "$POSTGRES_TMP/initdb.log" >&2
		return 1
	}

	# Another process can take the port between the check and the bind, so
	# try a few.
	local port attempt
	for attempt in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		postgres_port_free "$port" || continue
		if postgres_as "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_TMP/data" -l "$POSTGRES_TMP/server.log" \
			-w -t 60 -o "-c listen_addresses=127.0.0.1 -p $port -k $POSTGRES_TMP -c fsync=on -c synchronous_commit=on -c max_connections=200" \
			start >/dev/null; then
			break
		fi
		echo "postgres: start on port $port failed (attempt $attempt)" >&2
		port=""
	done
	if [[ -z $port ]]; then
		cat "$POSTGRES_TMP/server.log" >&2 || true
		return 1
	fi

	postgres_as "$POSTGRES_BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres msgr_test
	export MSGR_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/msgr_test?sslmode=disable"
	echo "postgres: $("$POSTGRES_BIN/postgres" --version) on 127.0.0.1:$port" >&2
}

# postgres_stop stops the server started by postgres_start and removes its files.
postgres_stop() {
	[[ -n $POSTGRES_TMP ]] || return 0
	if [[ -f $POSTGRES_TMP/data/postmaster.pid ]]; then
		postgres_as "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_TMP/data" -m fast -w stop >/dev/null || true
	fi
	rm -rf "$POSTGRES_TMP"
	POSTGRES_TMP=""
}
