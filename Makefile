# The two entry points a fresh Debian machine needs: `make demo` and `make test`.
.PHONY: demo demo-info test lint bench release

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
	SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy .venv/bin/pytest -q -p no:cacheprovider

lint:
	.venv/bin/ruff check .

bench:
	.venv/bin/python bench/preempt.py
	.venv/bin/python bench/cold_start.py

# An agent release (README, "Releasing the agent"): VERSION defaults to pyproject's; WHEELHOUSE
# names a folder of the Pi's dependency wheels to bundle.
release:
	.venv/bin/python -m scripts.release $(if $(VERSION),--version $(VERSION)) $(if $(WHEELHOUSE),--wheelhouse $(WHEELHOUSE))
