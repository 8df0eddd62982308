# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision pinned where this project is developed and tested (a range in pyproject.toml).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test test-fast demo lint design bench rehearsal clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

test: install
	$(BIN)/python -m pytest

# The suite without the tests marked slow (pyproject.toml); pytest's exit code 5 (none collected) fails it too.
test-fast: install
	$(BIN)/python -m pytest -m "not slow"

demo: install
	$(BIN)/labor demo

# ruff's rules and line length are in pyproject.toml; `ruff format .` fixes what the check reports.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# docs/design.md's layout table, regenerated from the tree's imports (tests/test_layout.py fails while it is stale).
design: install
	$(BIN)/python tests/import_graph.py --write

bench: install
	$(BIN)/labor bench

# Its own slow lane, never part of `make test`: the whole chain with DeepLab-v2 R101 at the real
# sizes on a few drawn images, each stage's memory, time and disk (README, "Real data"; about
# 16 GB of memory). RUN=DIR picks the folder, FORCE=1 replaces it, DEVICE=cuda runs on a GPU.
RUN ?= runs/rehearsal
rehearsal: install
	PYTHON=$(BIN)/python nice -n 10 examples/rehearsal.sh $(RUN)

clean:
	rm -rf $(VENV) runs build *.egg-info
