#!/usr/bin/env bash
# Runs benchmarks against the same throwaway servers as scripts/test.sh,
# without -race: ./scripts/bench.sh [packages] [go test flags]
# e.g. ./scripts/bench.sh ./storage/postgres -benchtime=3s
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

trap 'postgres_stop; minio_stop; redis_stop' EXIT
if [[ -z ${MSGR_TEST_DATABASE_URL:-} ]]; then
	postgres_start
fi
if [[ -z ${MSGR_TEST_REDIS_URL:-} ]]; then
	redis_start
fi
if [[ -z ${MSGR_TEST_S3_ENDPOINT:-} ]]; then
	minio_start
fi

if [[ $# -gt 0 && $1 != -* ]]; then
	go test -count=1 -run '^$' -bench . "$@"
else
	go test -count=1 -run '^$' -bench . ./... "$@"
fi
