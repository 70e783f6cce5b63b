# edgekit — `make demo` and `make test` bootstrap .venv themselves (python3 -m venv + pip).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EDGEKIT := $(VENV)/bin/edgekit
DEMO_DIR ?= demo-out
PYTEST_ARGS ?=

.PHONY: setup test test-fast lint demo report-screenshot bench clean

setup: $(VENV)/.installed

# Re-install when the dependency list changes. pip (not uv/poetry) so the local torch CPU wheel is used.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# pytest exit 5 ("no tests collected") is a failure, not a pass.
test: setup
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: PYTEST_ARGS = -m "not slow"
test-fast: test

lint: setup
	$(VENV)/bin/ruff check edgekit tests benchmarks fuzz

# The whole chain on the embedded default (digits CNN in PyTorch and Keras → every route × precision), then a
# mobile bundle of one artifact, verified. Ends with where the report is.
demo: setup
	$(EDGEKIT) pipeline --out $(DEMO_DIR) --force
	$(EDGEKIT) package $(DEMO_DIR)/artifacts/digits_cnn_keras.int8-io.tflite -o $(DEMO_DIR)/digits_int8.zip --force
	$(EDGEKIT) package --verify $(DEMO_DIR)/digits_int8.zip
	@echo "report: $(abspath $(DEMO_DIR))/report.html (also report.md, report.json, junit.xml)"

# Headless Chromium screenshot of the demo's report.html (Debian: apt-get install chromium).
report-screenshot:
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,4000 \
		--screenshot=$(abspath $(DEMO_DIR))/report.png file://$(abspath $(DEMO_DIR))/report.html
	@echo "screenshot: $(DEMO_DIR)/report.png"

bench: setup
	$(PY) benchmarks/startup.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
