#!/usr/bin/env bash
# The whole suite (`make test`): on SQLite, and the hub's tests listed in POSTGRES_TESTS again
# on a throw-away PostgreSQL. The two runs go side by side: each keeps one core at about
# two-thirds (browsers, subprocesses and sockets wait a lot), so together they finish about a
# minute and a half sooner than one after the other. The PostgreSQL run's output is shown
# whole once it ends; either run failing fails the suite.
#
# Neither run may hang CI: a test that hangs fails by name (pytest-timeout, pyproject), a
# process that does not end after its tests prints its threads' stacks (tests/conftest.py),
# and as a last resort each run is interrupted after RUN_LIMIT_S, which makes pytest print
# where it was and what has passed so far.
# Usage: scripts/test_suites.sh TESTS-FOR-POSTGRES...
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
RUN_LIMIT_S="${RUN_LIMIT_S:-1800}"
pytest=(timeout --signal=INT --kill-after=60 "$RUN_LIMIT_S" .venv/bin/pytest -q -p no:cacheprovider)

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

for run in "SQLite:$sqlite_status" "PostgreSQL:$pg_status"; do
  case "${run#*:}" in
    124 | 137) echo "${run%%:*} run stopped: no end after $RUN_LIMIT_S s" >&2 ;;
  esac
done
if [ "$sqlite_status" -ne 0 ] || [ "$pg_status" -ne 0 ]; then
  echo "FAILED: SQLite run exit $sqlite_status, PostgreSQL run exit $pg_status" >&2
  exit 1
fi
