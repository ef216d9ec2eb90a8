# Two commands do all set-up on a fresh Debian 12 / Raspberry Pi OS machine:
#   make run   - the gateway in simulation mode (prints its URL)
#   make test  - installs what the tests need (apt packages too), then lint, types, tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Debian packages the test suite uses: a real MQTT broker, a real browser, ffmpeg
# for timelapse videos, and the tools of the offline arm64 image check and the
# boot test (kmod: depmod for the arm64 kernel; dosfstools, mtools: the boot partition).
TEST_APT := mosquitto mosquitto-clients chromium ffmpeg qemu-system-arm e2fsprogs cpio \
            mmdebstrap qemu-user-static binfmt-support arch-test systemd \
            kmod dosfstools mtools
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint types pytest bench apt-test image clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing; installing it with apt"; \
	  $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q python3-venv && \
	  $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/gateway run --config config/sim.toml

apt-test:
	@missing=""; for p in $(TEST_APT); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi

lint: $(VENV)/.installed-test
	$(BIN)/ruff check gateway tests bench

types: $(VENV)/.installed-test
	$(BIN)/mypy

pytest: $(VENV)/.installed-test
	$(BIN)/pytest

test: apt-test lint types pytest

bench: $(VENV)/.installed-test
	$(BIN)/python bench/streaming.py
	$(BIN)/python bench/analysis.py
	$(BIN)/python bench/access.py
	$(BIN)/python bench/telemetry.py
	$(BIN)/python bench/camera.py
	$(BIN)/python bench/web.py
	$(BIN)/python bench/meter.py

# The flashable Raspberry Pi OS image (pi-gen; needs the Raspberry Pi archive).
image:
	image-build/build.sh

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache test-artefacts

# Every kiosk state and admin tab at 800x480 and 1280x800, into docs/screenshots/.
.PHONY: screenshots
screenshots: $(VENV)/.installed-test
	$(BIN)/python tests/web/screenshots.py docs/screenshots
