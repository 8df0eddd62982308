# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision pinned where this project is developed and tested (a range in pyproject.toml).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install test demo lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

test: install
	$(BIN)/python -m pytest

demo: install
	$(BIN)/labor demo

lint: install
	$(BIN)/python -m compileall -q labor_cli tests

bench: install
	$(BIN)/labor bench

clean:
	rm -rf $(VENV) runs build *.egg-info
