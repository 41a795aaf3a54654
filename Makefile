# Two commands on a fresh machine: `make run` (install + ppa up) and `make test`.
export UV_PYTHON_DOWNLOADS := never
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PPA_ARGS ?=

.PHONY: install run test test-unit schemas lint

$(UV):
	python3 -m pip install --user --quiet uv

install: $(UV)
	$(UV) sync --frozen

run: install
	$(UV) run --frozen ppa up $(PPA_ARGS)

test: install
	$(UV) run --frozen pytest

test-unit: install
	$(UV) run --frozen pytest tests/unit services -q

schemas: install
	$(UV) run --frozen python -m ppa_contracts.schema docs/events
