# Two commands on a fresh machine (see README):
#   make run    set up .venv, fetch MNIST, run the inversion experiment, write its figures
#   make test   set up .venv and run the test suite
#   make lint   formatting (pyink) and lint (ruff) checks, as CI runs them; `make format` fixes
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum setup.py | cut -d' ' -f1)
RUN := runs/inversion-mnist

.PHONY: install run quick test test-all lint format clean-venv

$(STAMP): setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test,lint,compare]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# The main job: Fig. 1b of the paper on MNIST, 100 seeds (about 20 min on a 2-core CPU).
# An existing run is kept: delete $(RUN) (or run experiments/inversion.py --overwrite) to redo it.
run: $(RUN)/summary.json

$(RUN)/summary.json: | $(STAMP)
	$(PY) experiments/inversion.py --dataset=mnist --seeds=100 --workdir=$(RUN)

quick: $(STAMP)
	$(PY) experiments/inversion.py --quick --overwrite --workdir=runs/inversion-mnist-quick

# The default suite in one process per core, 4 at most (pytest-xdist; TEST_WORKERS=0: one
# process). test-all runs in one process, as before: its slow checks, which interrupt processes
# of their own, have not been tried under xdist.
TEST_WORKERS ?= auto --maxprocesses=4
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests

test-all: $(STAMP)
	$(PY) -m pytest -q -m '' tests

lint: $(STAMP)
	$(VENV)/bin/pyink --check --diff .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix --select I .
	$(VENV)/bin/pyink .

clean-venv:
	rm -rf $(VENV)
