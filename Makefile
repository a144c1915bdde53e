# bnlab developer commands. Everything runs inside .venv, which `make venv` creates:
# torch==2.13.0 (the CPU build) is installed first so no CUDA build is ever pulled.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.bnlab-installed

.PHONY: venv reproduce demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Every registered recipe at quick scale on the embedded default (MNIST-1D, generated
# locally): no network, no GPU. Writes bnlab_out/bnlab.db and bnlab_out/report.html.
reproduce: venv
	$(BIN)/bnlab reproduce --scale quick --data mnist1d --executor process --workers 2

demo: venv
	$(BIN)/bnlab demo

lint: venv
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python -m pip install -q -e '.[bench]'
	for f in benchmarks/bench_*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) bnlab_out .pytest_cache .ruff_cache
