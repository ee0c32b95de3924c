# onecard: `make demo` to see it, `make test` to prove it. Both work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo console test lint walkthrough bench clean

# The runtime install (no compiler or system packages needed).
$(BIN)/.base: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

# Everything the tests need: Debian's PC/SC stack (pyscard builds against it), dev extras.
$(BIN)/.dev: pyproject.toml scripts/install-system-deps.sh $(BIN)/.base
	scripts/install-system-deps.sh
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# DESK=triage|doctor|kiosk|lab|pharmacy opens that desk (its own counter) instead of the cashier's.
DESK ?= cashier
demo: $(BIN)/.base
	$(BIN)/python scripts/demo_stack.py --desk $(DESK)

# In another terminal while `make demo` runs: central's IT console on the demo's central.
console: $(BIN)/.base
	@test -f .demo/central/central.toml || { \
	    echo "no demo is running in this checkout: start 'make demo' first" >&2; exit 1; }
	$(BIN)/onecard-central --config .demo/central/central.toml console --operator it.demo

walkthrough: $(BIN)/.base
	$(BIN)/python -m edge_node.walkthrough

lint: $(BIN)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

# The suite runs on pytest-xdist workers (many tests wait on real processes, sockets and
# SQLite, so more workers than cores pay); tests that share one resource carry
# @pytest.mark.xdist_group and run on one worker. `python -m pytest tests/test_x.py` alone
# runs in one process. The onecard processes the tests start find their modules compiled
# (PYTHONDONTWRITEBYTECODE would have each of them compile its imports again).
# --durations: the slowest tests, so a slow CI run says where its time went.
TEST_WORKERS ?= 4
test: $(BIN)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m compileall -q protocol edge_node central tests
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --durations=25

# Each prints one JSON line. The processes they start find their modules compiled, as in
# a deployment (pip compiles a wheel's at install; an editable install's modules are
# compiled at first import, but never where PYTHONDONTWRITEBYTECODE is set: each process
# would compile them again, ~0.1 s of CPU). card_tap needs root (it runs its own pcscd);
# converge compares with ../shared/peer-bench (PouchDB), run separately with node.
bench: $(BIN)/.dev
	$(BIN)/python -m compileall -q protocol edge_node central tests bench
	$(BIN)/python bench/edge_append.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/rebuild.py
	$(BIN)/python bench/converge.py 5000 4
	$(BIN)/python bench/card_tap.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache .ruff_cache
