# headrace: one command each. `make demo` and `make test` work on a fresh machine with only python3.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
export UV_COMPILE_BYTECODE := 1

.PHONY: install demo test check lint typecheck imports bench clean

# pyspark is published only as a large sdist, which uv would build again on every install:
# pip builds its wheel once into WHEELS (kept between clones), and uv installs that file.
WHEELS ?= $(HOME)/.cache/headrace-wheels

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check uv
	ls $(WHEELS)/pyspark-*.whl >/dev/null 2>&1 || \
		$(VENV)/bin/pip wheel -q --disable-pip-version-check --no-deps -w $(WHEELS) "pyspark>=3.5"
	$(UV) pip install -q --python $(PY) -e ".[dev,demo]" $$(ls -t $(WHEELS)/pyspark-*.whl | head -1)
	$(PY) -m compileall -q src
	touch $@

install: $(VENV)/.installed

# `make demo` needs only headrace, scikit-learn and the server extra (for the `headrace ui` it
# suggests): on a fresh clone it installs just those (no dev tools, no pyspark), into the same
# .venv, which `make install` later completes.
$(VENV)/.demo-installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(VENV)/bin/pip install -q --disable-pip-version-check uv
	$(UV) pip install -q --python $(PY) -e ".[demo,server]"
	touch $@

demo: $(VENV)/.demo-installed
	$(PY) examples/compare_models/run_demo.py

test: install
	$(PY) -m pytest -q -n 3 --dist loadfile --durations=20

lint: install
	$(VENV)/bin/ruff check src tests examples benchmarks
	$(VENV)/bin/ruff format --check src tests examples benchmarks

typecheck: install
	$(VENV)/bin/mypy

imports: install
	$(VENV)/bin/lint-imports

check: lint typecheck imports test

bench: install
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .bench .demo .test-artifacts
