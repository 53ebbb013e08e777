# The two commands a newcomer needs:
#   make quickstart   offline end-to-end run: Wikipedia summaries -> index -> Gemma 3 270M -> dataset
#   make test         installs everything (CPU torch first), then ruff, mypy and pytest
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# llama-cpp-python compiles from source; it is built once per machine with portable CPU flags
# (the -march=native build segfaults on some CPUs) and the wheel is kept here.
WHEELS ?= $(HOME)/.cache/ragloom/wheels
LLAMA_CPP_VERSION ?= 0.3.36
VLLM_VERSION ?= 0.33.0
# vLLM's pure-Python imports (SamplingParams, StructuredOutputsParams, RequestOutput); its engine needs a GPU
VLLM_PY_DEPS := msgspec cbor2 psutil pyzmq aiohttp requests openai-harmony pillow pybase64 cachetools uvloop py-cpuinfo prometheus_client

.PHONY: install test lint quickstart bench clean

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q torch==2.13.0
	mkdir -p $(WHEELS)
	ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PY) -m pip wheel -q --no-deps --no-cache-dir -w $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(PY) -m pip install -q $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(PY) -m pip install -q -e ".[dev,local]"
	# the vllm backend's tests build real vLLM parameter/output objects; only the engine is stood in
	$(PY) -m pip install -q --no-deps vllm==$(VLLM_VERSION)
	$(PY) -m pip install -q $(VLLM_PY_DEPS)
	touch $@

install: $(VENV)/.installed

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy generator retrieval ragloom

# the report tests drive Debian's chromium headless (never a downloaded browser)
test: lint
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -rs

quickstart: install
	HF_HUB_OFFLINE=1 $(PY) examples/quickstart.py

bench: install
	HF_HUB_OFFLINE=1 $(PY) bench/retrieval.py

clean:
	rm -rf $(VENV) build *.egg-info quickstart
