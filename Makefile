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

.PHONY: venv run ablations seeds test test-fast lint dry-run report bench docs clean

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

# The three-seed spread of the default run (docs/results.md): the pipeline once per seed in
# results/seeds/seed<N>/ (levels cut to L1), then results/seeds/spread.{csv,md}: L1 PSNR and
# ST-LPIPS of every trained model per seed, mean, spread and std. Not part of `make run`
# (three runs' training). SEEDS="0 1 2 3" for more.
SEEDS ?= 0 1 2
seeds: $(STAMP)
	$(BIN)/python scripts/seed_spread.py --seeds $(SEEDS) --cores $(CORES)

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

# The full CUFED5 evaluation of the released models (4 models x 126 groups x 9 levels), timed on
# a sample of groups and extrapolated (BENCHMARKS.md, "CUFED5 on a laptop"). TTSR_CHECKOUT: a
# checkout of researchmm/TTSR, to time its own code beside ours (optional).
.PHONY: bench-cufed5 bench-gpu
BENCH_GROUPS ?= 2
bench-cufed5: $(STAMP)
	$(BIN)/refsr bench cufed5 --groups $(BENCH_GROUPS) $(if $(TTSR_CHECKOUT),--released-ttsr $(TTSR_CHECKOUT))

# The GPU figures in one run (< 8 minutes): results/bench/gpu.json and the GPU rows of BENCHMARKS.md.
bench-gpu: $(STAMP)
	$(BIN)/python -m refsr.bench.gpu --out results/bench --markdown BENCHMARKS.md

# The documentation site (mkdocs.yml, docs/): site/, strict (a broken link, a missing page or
# any other warning fails). The configuration and CLI pages are generated from the schema and the
# parser (docs/hooks.py); results tables are included from results/ when a run has written them.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --clean -d site

clean:
	rm -rf results .snakemake site
