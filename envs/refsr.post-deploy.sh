#!/usr/bin/env bash
# Post-deploy script of envs/refsr.yaml (envs/refsr-gpu.post-deploy.sh is a link to it): installs
# refsr into the conda environment the way `make venv` installs it into .venv, editable from this
# checkout (`pip install -e`), without dependencies (the environment file pins them, setuptools,
# the build backend, among them: nothing is fetched here).
#
# Snakemake runs it once, right after creating the environment, as `/usr/bin/env bash <copy>`
# (the copy: .snakemake/conda/<hash>.post-deploy.sh, or under --conda-prefix), from Snakemake's
# working directory, with the environment activated (CONDA_PREFIX) and Snakemake's environment
# variables. Neither the copy's path nor the working directory says where the checkout is, so
# workflow/rules/common.smk exports it as REFSR_CHECKOUT (the folder above workflow/).
set -euo pipefail
unset PYTHONPATH  # the jobs run without it (Snakemake removes it in conda environments)

checkout="${REFSR_CHECKOUT:-}"
python="${CONDA_PREFIX:-}/bin/python"
if [ -z "$checkout" ] || [ ! -f "$checkout/pyproject.toml" ] || [ ! -f "$checkout/src/refsr/__init__.py" ]; then
    echo "refsr post-deploy: REFSR_CHECKOUT='$checkout' is not a refsr checkout" \
         "(workflow/rules/common.smk sets it to the folder above workflow/)" >&2
    exit 1
fi
if [ ! -x "$python" ]; then
    echo "refsr post-deploy: CONDA_PREFIX='${CONDA_PREFIX:-}' has no bin/python" \
         "(Snakemake runs this script in the activated environment)" >&2
    exit 1
fi

"$python" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
    --editable "$checkout"

# The environment now imports refsr from this checkout, whatever the working directory.
cd /
"$python" - "$checkout" <<'PY'
import pathlib
import sys

import refsr

got, want = pathlib.Path(refsr.__file__).resolve(), pathlib.Path(sys.argv[1]).resolve() / "src"
if want not in got.parents:
    sys.exit(f"refsr post-deploy: the environment imports refsr from {got}, not from {want}")
print(f"refsr post-deploy: refsr installed editable from {want}")
PY
