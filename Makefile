# The two entry points a fresh Debian machine needs: `make demo` and `make test`.
.PHONY: demo demo-info test lint bench release

# Run a second time on a throw-away PostgreSQL (tests/conftest.py): the hub's API, workflow,
# reports, device protocol, ingest, play evidence, accounts, paging, nodes, backups,
# `hub serve` as the README runs it behind nginx, maintenance notices, CAP, the commune's
# say, incidents, reports going up, deletion, device groups, releases, search, special days,
# the register of units, and the API fuzzer (it found text PostgreSQL cannot store).
POSTGRES_TESTS = tests/test_hub_api.py tests/test_workflow.py tests/test_reports.py \
	tests/test_hub_device.py tests/test_ingest.py tests/test_play_evidence.py \
	tests/test_backup.py tests/test_hub_damage.py tests/test_postgres_backend.py \
	tests/test_accounts.py tests/test_paging.py tests/test_hub_nodes.py tests/test_bad_input.py \
	tests/test_tls_front.py tests/test_maintenance.py tests/test_cap.py tests/test_offers.py \
	tests/test_incidents.py tests/test_reports_up.py tests/test_deletion.py \
	tests/test_device_groups.py tests/test_release_console.py tests/test_search_airings.py \
	tests/test_console_days.py tests/test_node_bus.py tests/test_several_nodes.py \
	tests/test_units.py tests/test_schemathesis.py

# The SQLite run of these goes after the PostgreSQL run, in its lane (scripts/test_suites.sh),
# so that the two lanes end together: about 140 s of the SQLite run's 490 s (measured with
# --durations=0 on this 2-core machine).
ALONGSIDE_POSTGRES = tests/test_faults_bench.py tests/test_fleet_updates.py \
	tests/test_console_layout.py tests/test_disk.py

demo:
	@scripts/bootstrap.sh demo
	.venv/bin/python -m scripts.demo

# The running demo's addresses and accounts again, from another terminal.
demo-info:
	.venv/bin/python -m scripts.demo --info

test:
	@scripts/bootstrap.sh test
	.venv/bin/ruff check .
	.venv/bin/mypy hub edge_agent loa_contract
	scripts/test_suites.sh $(POSTGRES_TESTS) -- $(ALONGSIDE_POSTGRES)

lint:
	.venv/bin/ruff check .

bench:
	.venv/bin/python bench/preempt.py
	.venv/bin/python bench/cold_start.py

# An agent release (README, "Releasing the agent"): VERSION defaults to pyproject's; WHEELHOUSE
# names a folder of the Pi's dependency wheels to bundle.
release:
	.venv/bin/python -m scripts.release $(if $(VERSION),--version $(VERSION)) $(if $(WHEELHOUSE),--wheelhouse $(WHEELHOUSE))
