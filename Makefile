# Every command creates the environment first (a venv in .venv, with torch
# pinned to the CPU build by constraints.txt), so each works on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The browser test drives Debian's Chromium (Playwright's own browser download
# is not used); `make browser` installs it with apt-get when it is missing.
CHROMIUM ?= /usr/bin/chromium
# `whipnb grade` runs every kernel in Debian's bubblewrap (docs/SECURITY.md);
# `make install` (and so demo and test) installs it with apt-get when it is missing.
BWRAP ?= /usr/bin/bwrap
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# `make lab` options; the browser test points them at a temporary copy.
LAB_DIR ?= notebooks
LAB_ARGS ?=
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: install demo test lint lab browser sandbox notebooks calibrate clean

install: $(STAMP) sandbox

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP) sandbox
	$(BIN)/whipnb grade notebooks solutions

test: $(STAMP) sandbox
	@$(MAKE) --no-print-directory browser || echo "warning: Chromium could not be installed; the browser test will fail" >&2
	$(BIN)/ruff check whipnb tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check whipnb tests benchmarks
	$(BIN)/ruff format --check whipnb tests benchmarks
	$(BIN)/lint-imports

lab: $(STAMP)
	$(BIN)/jupyter lab $(ALLOW_ROOT) $(LAB_ARGS) $(LAB_DIR)

browser: $(CHROMIUM)
	@:

sandbox: $(BWRAP)
	@:

# Debian's package lists are fetched once, before the first package this Makefile
# installs (and not at all when every package is there).
APT_LISTS := $(VENV)/.apt-lists
APT_UPDATE = test -e $(APT_LISTS) || { $(SUDO) apt-get -qq -o DPkg::Lock::Timeout=600 update \
	&& mkdir -p $(VENV) && touch $(APT_LISTS); }

$(BWRAP):
	@echo "installing bubblewrap with apt-get (the sandbox of every grading kernel)"
	$(APT_UPDATE)
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -qq -o DPkg::Lock::Timeout=600 \
		install -y --no-install-recommends bubblewrap >/dev/null

$(CHROMIUM):
	@echo "installing Chromium with apt-get (for the browser test)"
	$(APT_UPDATE)
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get -qq -o DPkg::Lock::Timeout=600 \
		install -y --no-install-recommends chromium >/dev/null

notebooks: $(STAMP)
	$(BIN)/python -m whipnb.authoring.notebooks .

clean:
	rm -rf $(VENV) build *.egg-info

calibrate: $(STAMP)
	$(BIN)/python -m whipnb.authoring.calibration docs/GRADING.md

# Benchmarks (not tests): each script prints its figures, ratios of variants run
# side by side in the same run; docs/PERFORMANCE.md has the figures and commands.
# The nbgrader anchor installs nbgrader in its own venv under benchmarks/.work/.
# Fewer rounds: make bench BENCH_ARGS="--rounds 1"
BENCH_ARGS ?=
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python benchmarks/startup.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/overhead.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/anchor_nbgrader.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/scaling.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/memory.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/latency.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/sandbox.py $(BENCH_ARGS)
