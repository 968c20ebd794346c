#!/usr/bin/env bash
# The whole suite (`make test`): on SQLite, and the hub's tests listed in POSTGRES_TESTS again
# on a throw-away PostgreSQL. The two runs go side by side: each keeps one core at about
# two-thirds (browsers, subprocesses and sockets wait a lot), so together they finish about a
# minute and a half sooner than one after the other. The PostgreSQL run's output is shown
# whole once it ends; either run failing fails the suite.
# Usage: scripts/test_suites.sh TESTS-FOR-POSTGRES...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
pytest=(.venv/bin/pytest -q -p no:cacheprovider)

pg_log="$(mktemp -t loa-postgres-tests.XXXXXX)"
trap 'rm -f "$pg_log"' EXIT
LOA_TEST_DATABASE=postgres "${pytest[@]}" "$@" >"$pg_log" 2>&1 &
pg_pid=$!

echo "==> the whole suite on SQLite (the PostgreSQL run goes alongside; its output follows)"
"${pytest[@]}"
sqlite_status=$?

wait "$pg_pid"
pg_status=$?
echo "==> the hub's tests on PostgreSQL"
cat "$pg_log"

if [ "$sqlite_status" -ne 0 ] || [ "$pg_status" -ne 0 ]; then
  echo "FAILED: SQLite run exit $sqlite_status, PostgreSQL run exit $pg_status" >&2
  exit 1
fi
