# `make pipeline`: set up and run the whole pipeline (dvc repro) on the built-in digits.
# `make stylegan2`, `make biggan`, `make r3gan`, `make cyclegan`: set up and run that
#                  family's preset (dvc repro pipelines/<family>/dvc.yaml, from a plain shell).
# `make test`:     set up and run lint and the test suite (what CI runs).
# Both are idempotent: the virtual environment is rebuilt only when the pins change.

PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)
ACTIVATE := . $(VENV)/bin/activate
VEGA := $(VENV)/share/vega/template.html

PATH_HOOK := $(VENV)/.path-hook
PRESETS := stylegan2 biggan r3gan cyclegan

.PHONY: setup pipeline $(PRESETS) dvc-yaml test lint services bench bench-gpu gpu-wheels bench-pipeline clean

setup: $(STAMP) $(VEGA) $(PATH_HOOK)

$(STAMP): pyproject.toml requirements.lock scripts/install-deps.sh
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	scripts/install-deps.sh $(VENV)
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# `dvc plots show` without a network: vega, vega-lite and vega-embed from npm inlined into
# the page template (gan/vega_template.py, .dvc/config.local); without npm, a note.
$(VEGA): $(STAMP) gan/vega_template.py
	$(ACTIVATE) && python -m gan.vega_template --out $(VEGA) || \
	  echo "note: no offline plots template; dvc plots show loads vega from its CDN"

# `.venv/bin/dvc repro` from a plain shell: the venv's Pythons put its bin/ on PATH for the
# commands they start, so the stages' `gan` is found (scripts/venv-path.pth says how).
$(PATH_HOOK): $(STAMP) scripts/venv-path.pth
	cp scripts/venv-path.pth "$$($(VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/ganops-venv-path.pth"
	touch $@

pipeline: $(STAMP) $(VEGA)
	$(ACTIVATE) && dvc repro

# A family's preset; the StyleGAN2, BigGAN and R3GAN ones first run the default pipeline's
# prepare, preprocess and classifier stages they read (one protocol for all families).
$(PRESETS): $(STAMP) $(VEGA) $(PATH_HOOK)
	$(ACTIVATE) && dvc repro pipelines/$@/dvc.yaml

# After a change to the stage table (gan/stages.py): rewrite the dvc.yaml files' stages.
dvc-yaml: $(STAMP)
	$(ACTIVATE) && python -m gan.dvc_stages

lint: $(STAMP)
	$(ACTIVATE) && ruff check . && ruff format --check .

# The HPO test runs a real PostgreSQL server from Debian's packages; without root or apt it is skipped.
services:
	@command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
	  echo "note: PostgreSQL could not be installed; the HPO PostgreSQL test will be skipped"

test: lint services
	$(ACTIVATE) && pytest

# Tables on stdout, JSON in reports/bench/; under 10 minutes on the 2-core reference CPU.
bench: $(STAMP)
	$(ACTIVATE) && python benchmarks/vs_plain_loop.py && python benchmarks/families.py && \
	  python benchmarks/train_throughput.py && python benchmarks/ddp_scaling.py && \
	  python benchmarks/conv_peak.py && python benchmarks/precision.py

# Every preset with bf16, channels_last and compile off and on, then torchrun over all GPUs.
# Without CUDA: one line saying so, exit status 0.
bench-gpu: $(STAMP)
	$(ACTIVATE) && python benchmarks/gpu.py

# Wheels for scripts/gpu-check.sh on a lent GPU machine (needs a network): .gpu-wheels, git-ignored.
gpu-wheels:
	scripts/gpu-wheels.sh

# What dvc repro and the Prefect flow add to the stages' own compute (runs the pipeline 3 times).
bench-pipeline: $(STAMP)
	$(ACTIVATE) && python benchmarks/pipeline_overhead.py

clean:
	rm -rf runs reports models registry data/raw data/processed .cache
