#!/usr/bin/env bash
# Runs every fuzz target (func FuzzXxx in a _test.go file) for a while:
#   ./scripts/fuzz.sh            3 s per target (MSGR_FUZZTIME overrides)
#   ./scripts/fuzz.sh 10m        a longer hunt, 10 minutes per target
#   ./scripts/fuzz.sh 1m ./broker   only the targets of some packages
# `go test` alone runs each target's seed corpus (f.Add and testdata/fuzz)
# as a normal test; this script mutates inputs beyond it. A failure leaves
# the input in the package's testdata/fuzz/FuzzXxx/: commit it with the fix,
# it then stays a regression test.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
	PATH="/usr/local/go/bin:$PATH"
fi

fuzztime=${1:-${MSGR_FUZZTIME:-3s}}
shift || true
dirs=("$@")
if [[ ${#dirs[@]} -eq 0 ]]; then
	mapfile -t dirs < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)
fi

for dir in "${dirs[@]}"; do
	for target in $(grep -h --include='*_test.go' -ro '^func Fuzz[A-Za-z0-9_]*' "$dir" | sed 's/^func //' | sort -u); do
		echo "fuzz: $dir $target ($fuzztime)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir" >/tmp/msgr-fuzz.$$ 2>&1 || {
			cat /tmp/msgr-fuzz.$$
			rm -f /tmp/msgr-fuzz.$$
			exit 1
		}
	done
done
rm -f /tmp/msgr-fuzz.$$
