#!/usr/bin/env bash
# The whole suite (`make test`): every test on SQLite, and the hub's tests listed in
# POSTGRES_TESTS again on a throw-away PostgreSQL, in two lanes side by side. Each lane keeps
# one core at about two-thirds (browsers, subprocesses and sockets wait a lot):
#   lane 1: the SQLite run of every file but the ones given after `--`;
#   lane 2: the PostgreSQL run, then the SQLite run of the files given after `--`
#           (chosen so that the two lanes take about as long: Makefile, ALONGSIDE_POSTGRES).
# Lane 2's output is shown whole once it ends; any run failing fails the suite.
#
# Neither lane may hang CI: a test that hangs fails by name (pytest-timeout, pyproject), a
# process that does not end after its tests prints its threads' stacks (tests/conftest.py),
# and as a last resort each run is stopped after RUN_LIMIT_S.
# Usage: scripts/test_suites.sh TESTS-FOR-POSTGRES... [-- SQLITE-TESTS-FOR-LANE-2...]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
export SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy
RUN_LIMIT_S="${RUN_LIMIT_S:-1800}"
pytest=(timeout --signal=INT --kill-after=60 "$RUN_LIMIT_S" .venv/bin/pytest -q -p no:cacheprovider)

postgres=() second=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do postgres+=("$1"); shift; done
[ $# -gt 0 ] && shift
second=("$@")
ignored=()
for file in "${second[@]}"; do ignored+=("--ignore=$file"); done

lane2_log="$(mktemp -t loa-lane2-tests.XXXXXX)"
trap 'rm -f "$lane2_log"' EXIT
(
  echo "==> the hub's tests on PostgreSQL"
  LOA_TEST_DATABASE=postgres "${pytest[@]}" "${postgres[@]}"
  pg_status=$?
  second_status=0
  if [ "${#second[@]}" -gt 0 ]; then
    echo "==> on SQLite, alongside: ${second[*]}"
    "${pytest[@]}" "${second[@]}"
    second_status=$?
  fi
  echo "LANE2 $pg_status $second_status"
) >"$lane2_log" 2>&1 &
lane2_pid=$!

echo "==> the suite on SQLite (the PostgreSQL run goes alongside; its output follows)"
"${pytest[@]}" "${ignored[@]}"
sqlite_status=$?

wait "$lane2_pid"
cat "$lane2_log"
read -r _ pg_status second_status < <(grep '^LANE2 ' "$lane2_log" || echo "LANE2 1 1")

status=0
for run in "SQLite:$sqlite_status" "PostgreSQL:$pg_status" "SQLite alongside:$second_status"; do
  code="${run##*:}"
  case "$code" in
    0) ;;
    124 | 137) echo "${run%:*} run stopped: no end after $RUN_LIMIT_S s" >&2; status=1 ;;
    *) echo "${run%:*} run failed (exit $code)" >&2; status=1 ;;
  esac
done
exit "$status"
