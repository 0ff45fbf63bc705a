# refsr — set-up and entry points. `make run` and `make test` create .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.refsr-installed
CORES ?= all
SNAKEMAKE_ARGS ?=

# Offline development machines keep ImageNet VGG19 conv1_1..conv3_1 weights in
# ../shared/weights; use them when the variable is not set already. Elsewhere
# torchvision downloads the weights on first use.
SHARED_VGG := $(abspath ../shared/weights/vgg19_imagenet_conv1_1-conv3_1.pth)
ifeq ($(origin REFSR_VGG19_WEIGHTS),undefined)
ifneq ($(wildcard $(SHARED_VGG)),)
export REFSR_VGG19_WEIGHTS := $(SHARED_VGG)
endif
endif

.PHONY: venv run ablations test test-fast lint dry-run report bench docs clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --report results/report.html $(SNAKEMAKE_ARGS)

# Ablations (docs/ablations.md): the config's `ablations` variants against the main run and the
# known-correspondence matching study; builds the main run's inputs first if they are missing.
# The report then shows the main run and the ablations.
ablations: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) all ablations $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --report results/report.html all ablations $(SNAKEMAKE_ARGS)

dry-run: $(STAMP)
	$(BIN)/snakemake -n --cores $(CORES) $(SNAKEMAKE_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

# Lint: the workflow (snakemake --lint, snakefmt), the Python (ruff) and the layer
# contracts between the package's stages (import-linter, see docs/architecture.md).
lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check workflow
	$(BIN)/ruff check src tests scripts
	$(BIN)/lint-imports

report: $(STAMP)
	$(BIN)/snakemake --report results/report.html $(SNAKEMAKE_ARGS)

# Benchmark suite (about 5 minutes on 2 CPU cores): results/bench/*.json and the table in BENCHMARKS.md.
bench: $(STAMP)
	$(BIN)/refsr bench all --out results/bench --markdown BENCHMARKS.md

# The documentation site (mkdocs.yml, docs/): site/, strict (a broken link, a missing page or
# any other warning fails). The configuration and CLI pages are generated from the schema and the
# parser (docs/hooks.py); results tables are included from results/ when a run has written them.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --clean -d site

clean:
	rm -rf results .snakemake site
