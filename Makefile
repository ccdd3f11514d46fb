# Two entry points for a fresh clone: `make demo` runs the main job on the
# bundled demo input, `make test` runs the test suite. Each builds the local
# virtual environment it needs (.venv) on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q

export RAY_AUTH_MODE := disabled
export RAY_USAGE_STATS_ENABLED := 0

.PHONY: demo test bench clean

# torch goes in first and alone, pinned: the CPU build of exactly this version
# ships with the development machines, and any looser spec pulls CUDA wheels.
$(VENV)/.runtime: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install "torch==$$(sed -n 's/^torch==//p' constraints.txt)"
	$(PIP) install -c constraints.txt -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(PIP) install -c constraints.txt -e '.[test]'
	touch $@

demo: $(VENV)/.runtime
	$(PY) jobs/encode_dataset.py

# Tests run in TEST_WORKERS processes (pytest-xdist), each with its own Ray head: a test waits on its
# job's processes much of the time, so two keep a 2-core machine busy.
TEST_WORKERS ?= 2

test: $(VENV)/.test
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

bench: $(VENV)/.test
	$(PY) bench/model.py
	$(PY) bench/precision.py
	$(PY) bench/decode.py
	$(PY) bench/pipeline.py
	$(PY) bench/dataset.py

clean:
	rm -rf $(VENV) out
