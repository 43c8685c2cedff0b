# The two commands of the README:
#   make report   set up .venv, build the embedded dataset, execute every notebook into reports/<profile>/
#   make test     set up .venv, run the whole test suite (notebooks included, smoke profile)
PYTHON ?= python3
VENV ?= .venv
PROFILE ?= standard
# DATA=/datasets/UCF101: run the report's notebooks on that dataset instead of the embedded one
DATA ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.seco_lab-installed
# torch's pinned (CUDA) wheels take about 6 GB in the venv: say so before pip runs out of space.
VENV_GB ?= 7

# Checked before the venv is created: the interpreter can install the pins (numpy 2.4 and
# scikit-learn 1.9 need Python 3.11 or newer) and the venv's disk has room for them.
define SETUP_CHECK
import os, shutil, sys
if sys.version_info[:2] < (3, 11):
    sys.exit(f"make: PYTHON=$(PYTHON) is Python {sys.version_info[0]}.{sys.version_info[1]}; the pins of "
             "requirements.txt need Python 3.11 or newer. Run make again with PYTHON=python3.11 "
             "(or the path of a newer interpreter).")
folder = os.path.abspath("$(VENV)")
while not os.path.isdir(folder):
    folder = os.path.dirname(folder)
free = shutil.disk_usage(folder).free / 2**30
if free < $(VENV_GB):
    sys.exit(f"make: only {free:.1f} GiB free on the disk of {folder}; installing the pinned "
             "requirements into $(VENV) needs about $(VENV_GB) GiB. Free some space and run make again.")
endef
export SETUP_CHECK

.PHONY: report test lab bench clean-reports

$(STAMP): requirements.txt pyproject.toml
	@$(BIN)/python -c "import torch" 2>/dev/null || $(PYTHON) -c "$$SETUP_CHECK"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --editable .
	@touch $(STAMP)

report: $(STAMP)
	$(BIN)/python -m seco_lab report --profile $(PROFILE) $(if $(DATA),--data "$(DATA)")

test: $(STAMP)
	SECO_LAB_PROFILE=smoke $(BIN)/python -m pytest

lab: $(STAMP)
	OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-PASSIVE} $(BIN)/jupyter lab notebooks/

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

clean-reports:
	rm -rf reports/
