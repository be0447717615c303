# Quick start:  make train   (trains the default preset on the default world)
#               make test    (runs the test suite)
# Both create/update the local virtual environment .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The CPU build of torch: small and fast to install. GPU users: see README.
TORCH  ?= torch==2.13.0

.PHONY: venv test train bench clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate setup.cfg pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

test: venv
	PYGLET_HEADLESS=1 LP_NUM_THREADS=0 $(BIN)/python -m pytest tests

train: venv
	PYGLET_HEADLESS=1 LP_NUM_THREADS=0 $(BIN)/director train default

clean:
	rm -rf $(VENV) build *.egg-info
