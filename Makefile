# edgekit — `make demo` and `make test` bootstrap .venv themselves (python3 -m venv + pip).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EDGEKIT := $(VENV)/bin/edgekit
DEMO_DIR ?= demo-out
PYTEST_ARGS ?=

.PHONY: setup test test-fast lint demo bench clean

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
	$(VENV)/bin/ruff check edgekit tests benchmarks

demo: setup
	@mkdir -p $(DEMO_DIR)
	$(EDGEKIT) info
	$(EDGEKIT) train --framework torch --arch cnn -o $(DEMO_DIR)/digits_cnn.pt2 --force
	$(EDGEKIT) train --framework keras --arch cnn -o $(DEMO_DIR)/digits_cnn.keras --force
	$(EDGEKIT) inspect $(DEMO_DIR)/digits_cnn.pt2
	$(EDGEKIT) inspect $(DEMO_DIR)/digits_cnn.keras
	$(EDGEKIT) routes
	$(EDGEKIT) convert $(DEMO_DIR)/digits_cnn.pt2 --to executorch --quantize int8 --force
	$(EDGEKIT) convert $(DEMO_DIR)/digits_cnn.pt2 --to onnx --quantize int8 --force
	$(EDGEKIT) convert $(DEMO_DIR)/digits_cnn.keras --to tflite --quantize int8 --force
	$(EDGEKIT) validate $(DEMO_DIR)/digits_cnn.pt2 $(DEMO_DIR)/digits_cnn.int8.pte --junit $(DEMO_DIR)/parity.xml --force
	$(EDGEKIT) bench $(DEMO_DIR)/digits_cnn.int8.pte $(DEMO_DIR)/digits_cnn.int8.onnx $(DEMO_DIR)/digits_cnn.int8.tflite --min-seconds 0.5
	$(PY) -m edgekit.samples $(DEMO_DIR) --force tflite executorch
	$(EDGEKIT) inspect $(DEMO_DIR)/tiny_cnn.tflite
	$(EDGEKIT) inspect $(DEMO_DIR)/tiny_cnn.pte
	@echo "demo models, their data splits and .edgekit.json sidecars are in $(DEMO_DIR)/"

bench: setup
	$(PY) benchmarks/startup.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache
