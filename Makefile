# One-command entry points. Each target sets up the environment first:
#   - inside an active virtual environment (VIRTUAL_ENV set) it installs into that one;
#   - otherwise it creates ./.venv with python3.11 (or python3) and installs there.
# The offline data folder defaults to ../shared/data when it exists (override with
# EMBEDDING_NORMS_DATA=/path or `make paper DATA=/path`).

PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
ENV_DIR     := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV),$(CURDIR)/.venv)
PY          := $(ENV_DIR)/bin/python
STAMP       := $(ENV_DIR)/.embedding-norms-installed
DATA        ?= $(or $(EMBEDDING_NORMS_DATA),$(wildcard $(CURDIR)/../shared/data))
export EMBEDDING_NORMS_DATA := $(DATA)
# the profile `make paper` and `make status` run: quick (default, reduced scale, CPU), paper (GPUs) or smoke
PROFILE     ?= quick

.PHONY: setup paper smoke test status clean-runs help

help:
	@echo "make paper   - set up, then rebuild every figure/table with profile $(PROFILE) (python -m reproduce all --profile $(PROFILE));"
	@echo "               the default is the reduced-scale 'quick' profile (CPU); the paper's own settings: make paper PROFILE=paper (GPUs)"
	@echo "make test    - set up, then run the test suite"
	@echo "make smoke   - set up, then wire-test every artifact (outputs/smoke/)"
	@echo "make status  - state of every run the paper needs"

$(STAMP): pyproject.toml
	@if [ ! -x "$(PY)" ]; then echo "creating virtual environment $(ENV_DIR)"; $(PYTHON_BOOT) -m venv "$(ENV_DIR)"; fi
	"$(PY)" -m pip install --upgrade pip
	"$(PY)" -m pip install -e ".[test]"
	@touch "$(STAMP)"

setup: $(STAMP)

paper: $(STAMP)
	@echo "make paper: profile $(PROFILE)$(if $(filter quick,$(PROFILE)), (reduced scale; the paper's settings: make paper PROFILE=paper),)"
	"$(PY)" -m reproduce all --profile $(PROFILE)

smoke: $(STAMP)
	"$(PY)" -m reproduce all --profile smoke

test: $(STAMP)
	"$(PY)" -m pytest -q

status: $(STAMP)
	"$(PY)" -m reproduce status --profile $(PROFILE)
