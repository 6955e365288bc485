#!/usr/bin/env bash
# Runs msgr's whole test suite: ./scripts/test.sh [go test flags | packages and flags]
#
# Starts the servers the tests need (a throwaway PostgreSQL unless
# MSGR_TEST_DATABASE_URL is set, a throwaway MinIO unless MSGR_TEST_S3_ENDPOINT
# is set, a throwaway redis-server unless MSGR_TEST_REDIS_URL is set), runs
# go test -race over every package and tears the servers down on exit.
# Works as root on a fresh Debian 12 machine
# (it installs what is missing) and in CI (no stdin).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib/postgres.sh
source scripts/lib/postgres.sh
# shellcheck source=scripts/lib/minio.sh
source scripts/lib/minio.sh
# shellcheck source=scripts/lib/redis.sh
source scripts/lib/redis.sh

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

# Each service has a start function that exports its MSGR_TEST_* variable and
# a stop function that is safe to call when nothing was started.
services_start() {
	if [[ -z ${MSGR_TEST_DATABASE_URL:-} ]]; then
		postgres_start
	fi
	if [[ -z ${MSGR_TEST_REDIS_URL:-} ]]; then
		redis_start
	fi
	if [[ -z ${MSGR_TEST_S3_ENDPOINT:-} ]]; then
		minio_start
	fi
}

services_stop() {
	redis_stop
	postgres_stop
	minio_stop
}

trap services_stop EXIT
services_start

# Flags alone run every package; a first argument that is not a flag names
# the packages, e.g. ./scripts/test.sh ./storage/postgres -run TestOpen -v.
if [[ $# -gt 0 && $1 != -* ]]; then
	go test -race -count=1 "$@"
else
	go test -race -count=1 ./... "$@"
fi

# A short fuzz pass over the payload decoders (go test above only replays
# the seed corpora), when the whole suite runs. MSGR_FUZZTIME=0 skips it;
# scripts/fuzz.sh runs longer or all targets (the broker's HTTP and config
# targets too, whose instrumented build of SQLite takes minutes when cold).
# The default is a number of inputs, not a duration: a time-boxed run can
# end with "context deadline exceeded" before its baseline coverage pass
# completes on a busy machine.
if [[ $# -eq 0 && ${MSGR_FUZZTIME:-100000x} != 0 ]]; then
	scripts/fuzz.sh "${MSGR_FUZZTIME:-100000x}" ./protocol ./hooks/chat ./hooks/acl
fi
