# edgekit — `make demo` and `make test` bootstrap .venv themselves (python3 -m venv + pip).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EDGEKIT := $(VENV)/bin/edgekit
DEMO_DIR ?= demo-out
PYTEST_ARGS ?=
# The lean install CI proves: base + [onnx,litert] only, no torch, no TensorFlow.
LEAN_VENV ?= .venv-lean
LEAN_EXTRAS ?= onnx,litert
LEAN_DIR ?= build/lean-check

.PHONY: setup test test-fast suite-profile lint lean-check demo report-screenshot bench clean

setup: $(VENV)/.installed

# Re-install when the dependency list changes. pip (not uv/poetry) so the local torch CPU wheel is used.
# Every backend is an extra (pyproject.toml); the development venv has them all.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $@

# A second venv with only the base and $(LEAN_EXTRAS), rebuilt from scratch when the dependency list changes
# (so nothing left over from an older list can hide a missing dependency). Its own .gitignore keeps it out of git.
$(LEAN_VENV)/.installed: pyproject.toml
	rm -rf $(LEAN_VENV)
	$(PYTHON) -m venv $(LEAN_VENV)
	echo '*' > $(LEAN_VENV)/.gitignore
	$(LEAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LEAN_VENV)/bin/python -m pip install --quiet -e '.[$(LEAN_EXTRAS)]'
	touch $@

# The lean install works on its own: info, routes, inspect/convert/validate/bench of ONNX and TFLite models
# (written with the full venv), a missing backend is exit 5 naming its extra, and torch/TensorFlow are absent.
lean-check: setup $(LEAN_VENV)/.installed
	tests/lean_env_check.sh $(VENV) $(LEAN_VENV) $(LEAN_DIR)

# Both cores: two xdist workers; tests sharing a costly module/class fixture (or default_pipeline) stay on one
# worker (tests/conftest.py). Bytecode is written (PYTHONDONTWRITEBYTECODE unset) so the many processes the suite
# starts compile edgekit and the tests' assertion rewrites once. pytest exit 5 ("no tests collected") is a failure.
PYTEST_WORKERS ?= 2
test: setup
	@env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

test-fast: PYTEST_ARGS = -m "not slow"
test-fast: test

# Where the suite's time goes, by module and cost class (benchmarks/suite_profile.py), run as `make test` runs it.
suite-profile: setup
	env -u PYTHONDONTWRITEBYTECODE $(PY) benchmarks/suite_profile.py -- -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

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
	rm -rf $(VENV) $(LEAN_VENV) $(LEAN_DIR) $(DEMO_DIR) .pytest_cache .ruff_cache
