"""What the pipeline builds for a validated config: its targets, every file's path, each job's
inputs and GPUs. ``workflow/rules/common.smk`` holds one :class:`Plan` and its rules only
declare; the paths here are the DAG's contract (DESIGN.md section 5).

No torch here: the workflow imports this module while it builds the DAG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from refsr.core.config import schema
from refsr.core.errors import RefsrError
from refsr.data import read_manifest
from refsr.evaluation import external, variants
from refsr.models import registry
from refsr.pipeline.jobs import benchmark_made, learned_texture_models
from refsr.similarity.tiers import read_tiers

#: Table name -> file stem of the tables rule's outputs.
TABLES = {"main": "main", "per_level": "per_level", "paper": "paper_vs_reproduced", "benchmark": "benchmark"}
#: Figure name -> file stem of the figures rule's outputs (one of each per dataset).
FIGURES = {"levels": "metric_vs_level", "grid": "comparison", "corr": "correspondence"}
TABLE_EXTS, FIGURE_EXTS = ("csv", "md", "tex"), ("png", "pdf")


def degradations() -> list[str]:
    """The degradations LR can be made by (the schema's)."""
    return list(schema()["properties"]["degradation"]["properties"]["train"]["enum"])


@dataclass
class Plan:
    """The pipeline of one validated config."""

    config: Mapping
    main_degradation: dict = field(init=False)

    def __post_init__(self) -> None:
        self.main_degradation = {k: self.config["degradation"][k] for k in ("test", "train")}

    # ----------------------------------------------------------------------- what is run
    @cached_property
    def datasets(self) -> list[str]:
        return sorted(set(self.config["eval_datasets"]) | {self.config["train_dataset"]})

    @property
    def eval_datasets(self) -> list[str]:
        return list(self.config["eval_datasets"])

    @property
    def models(self) -> list[str]:
        return list(self.config["models"])

    @cached_property
    def external(self) -> dict[str, external.ExternalOutputs]:
        """The config's external methods (SR images made elsewhere), by name."""
        return external.entries(self.config)

    @property
    def methods(self) -> list[str]:
        """What is evaluated and tabulated: the models, then the external methods."""
        return self.models + list(self.external)

    @property
    def pretrained(self) -> dict:
        return dict(self.config["pretrained"])

    @cached_property
    def train_models(self) -> list[str]:
        return registry.to_train(self.config)

    @cached_property
    def learned(self) -> list[str]:
        return learned_texture_models(self.config)

    @cached_property
    def paper_dataset(self) -> str | None:
        """The first evaluated dataset of kind cufed5: it gets the paper-vs-reproduced table."""
        return next((ds for ds in self.eval_datasets if self.config["datasets"][ds]["kind"] == "cufed5"), None)

    @property
    def benchmark(self) -> bool:
        """Whether the tables rule makes the benchmark table (:func:`jobs.benchmark_made`)."""
        return benchmark_made(self.config)

    @cached_property
    def other_train(self) -> list[str]:
        """The training degradations the ablations' chain (train_variant) can use."""
        return [d for d in degradations() if d != self.main_degradation["train"]]

    @property
    def use_gpu(self) -> int:
        return 1 if self.config["device"] == "cuda" else 0

    @cached_property
    def variants(self) -> dict[str, dict]:
        return {v["name"]: v for v in self.config["ablations"]}

    # ----------------------------------------------------------------------- paths
    def lr_dir(self, dataset: str, test: str | None = None, train: str | None = None) -> str:
        """The LR folder whose test / training split is made by ``test`` / ``train`` (unset: the
        main run's): ``lr`` itself, or ``lr_test_{test}_train_{train}`` (ablations)."""
        test, train = test or self.main_degradation["test"], train or self.main_degradation["train"]
        if (test, train) == (self.main_degradation["test"], self.main_degradation["train"]):
            return f"results/data/{dataset}/lr"
        return f"results/data/{dataset}/lr_test_{test}_train_{train}"

    def chain_prefix(self, train: str | None = None) -> str:
        """Where the models trained on ``train`` LR live: the main run's, or an ablation's chain."""
        train = train or self.main_degradation["train"]
        return "results" if train == self.main_degradation["train"] else f"results/ablation/train_{train}"

    def checkpoint(self, model: str, train: str | None = None) -> str:
        """``model``'s checkpoint trained on ``train`` LR (unset: the main run's); imported
        weights are the same in every chain."""
        if model in self.pretrained:
            return f"results/imported/{model}/checkpoint.pt"
        return f"{self.chain_prefix(train)}/models/{model}/checkpoint.pt"

    def state(self, model: str, train: str | None = None) -> str:
        """Where a training job keeps its resumable state (outside Snakemake's outputs)."""
        prefix = self.chain_prefix(train).replace("results", "results/checkpoints", 1)
        return f"{prefix}/{model}/state.pt"

    def eval_csvs(self, datasets: Sequence[str] | None = None, models: Sequence[str] | None = None) -> list[str]:
        """Evaluation CSVs of every (dataset, model), datasets outer, models inner."""
        return [f"results/eval/{ds}/{m}.csv" for ds in (datasets or self.eval_datasets)
                for m in (models or self.methods)]

    def eval_jsons(self, datasets: Sequence[str] | None = None, models: Sequence[str] | None = None) -> list[str]:
        return [p.removesuffix(".csv") + ".json" for p in self.eval_csvs(datasets, models)]

    def released_records(self) -> list[str]:
        """The sha256 records of the imported weights of the listed models (the captions')."""
        return [f"results/imported/{m}/released.json" for m in self.models if m in self.pretrained]

    def preset_csvs(self) -> list[str]:
        """The scores under every protocol preset the benchmark table reads (none without it)."""
        if not self.benchmark:
            return []
        return [f"results/eval/{ds}/presets/{m}.csv" for ds in self.eval_datasets for m in self.methods]

    def table_paths(self) -> dict[str, str]:
        """{main,per_level[,paper][,benchmark]}_{csv,md,tex} -> path of the tables rule's outputs."""
        made = {"paper": self.paper_dataset is not None, "benchmark": self.benchmark}
        names = [t for t in TABLES if made.get(t, True)]
        return {f"{t}_{ext}": f"results/tables/{TABLES[t]}.{ext}" for t in names for ext in TABLE_EXTS}

    def figure_paths(self, dataset: str = "{dataset}") -> dict[str, str]:
        """Outputs of the figures rule for one dataset (PNG + PDF of each figure)."""
        return {f"{f}_{ext}": f"results/figures/{FIGURES[f]}_{dataset}.{ext}" for f in FIGURES for ext in FIGURE_EXTS}

    # ----------------------------------------------------------------------- targets
    def data_targets(self) -> list[str]:
        out = []
        for ds in self.datasets:
            out += [f"results/data/{ds}/manifest.csv", f"results/data/{ds}/lr", f"results/tiers/{ds}.csv",
                    f"results/tiers/{ds}_agreement.md", f"results/figures/tiers_{ds}.png"]
        return out

    def model_targets(self) -> list[str]:
        out = [self.checkpoint(m) for m in self.train_models]
        return out + [f"results/sr/{ds}/{m}" for ds in self.eval_datasets for m in self.models]

    def report_targets(self) -> list[str]:
        """Everything the report shows: evaluation CSVs, tables and figures."""
        out = self.eval_csvs() + list(self.table_paths().values())
        for ds in self.eval_datasets:
            out += list(self.figure_paths(ds).values())
        return out

    # ----------------------------------------------------------------------- inputs
    def train_inputs(self, model: str, train: str | None = None) -> dict[str, str]:
        """Inputs of train (and train_variant): the training data, its correspondences, the
        parent's checkpoint, all of the same training degradation."""
        ds, spec = self.config["train_dataset"], registry.spec_for(model, self.config)  # its recipe's parent
        inputs = {"manifest": f"results/data/{ds}/manifest.csv", "lr": self.lr_dir(ds, train=train)}
        if spec.correspondence:
            inputs["corr"] = f"{self.chain_prefix(train)}/correspondence/{ds}"
        if spec.parent is not None:
            inputs["init"] = self.checkpoint(spec.parent, train)
        return inputs

    def train_gpus(self, model: str) -> int:
        """GPUs of a training job: ``train.gpus`` of the config, else one when device is cuda."""
        return self.config["train"]["gpus"].get(model, self.use_gpu)

    def sisr_input(self, model: str, degrade: str, train: str | None = None) -> dict[str, str]:
        """reference.degrade sr_model: a reference-based model matches the outputs of the SISR
        model reference.sisr_model (trained on ``train`` LR), whose checkpoint is an input."""
        if degrade == "sr_model" and registry.get(model).uses_reference:
            return {"sisr": self.checkpoint(self.config["reference"]["sisr_model"], train)}
        return {}

    def infer_inputs(self, dataset: str, model: str) -> dict[str, str]:
        inputs = {"manifest": f"results/data/{dataset}/manifest.csv", "lr": self.lr_dir(dataset),
                  "tiers": f"results/tiers/{dataset}.csv"}
        if registry.get(model).has_weights:
            inputs["checkpoint"] = self.checkpoint(model)
        return {**inputs, **self.sisr_input(model, self.config["reference"]["degrade"])}

    def external_inputs(self, dataset: str, name: str) -> dict[str, str]:
        """The dataset (its images give the sizes), its tiers (which cells exist) and the folder."""
        return {"manifest": f"results/data/{dataset}/manifest.csv", "images": f"results/data/{dataset}/images",
                "tiers": f"results/tiers/{dataset}.csv", "folder": str(self.external[name].folder(dataset))}

    def check_external(self) -> None:
        """At DAG build, one line per external method with problems: its folder must exist; once
        the dataset and its tiers are built (a later run), every image it must have is checked
        (missing, unreadable, mis-sized: all listed). Reads image headers only."""
        for name, ext in self.external.items():
            levels = ext.levels_in(self.config["evaluation"]["levels"])
            for ds in self.eval_datasets:
                folder = ext.folder(ds)
                if not folder.is_dir():
                    raise RefsrError(f"config key external.{name}.path", f"folder {folder} not found")
                manifest, tiers = Path(f"results/data/{ds}/manifest.csv"), Path(f"results/tiers/{ds}.csv")
                if manifest.is_file() and tiers.is_file():
                    found = external.problems(ext, read_manifest(manifest, ds), read_tiers(tiers), levels,
                                              int(self.config["scale"]))
                    if found:
                        raise RefsrError(f"config key external.{name}.path", external.problem_line(ext, ds, found))

    def infer_gpu(self, model: str) -> int:
        """Inference takes a GPU (when the config says cuda) for models with a network."""
        return self.use_gpu if registry.get(model).has_weights else 0

    def correspondence_inputs(self, dataset: str, train: str | None = None) -> dict[str, str]:
        """The training data, and the SISR checkpoint when official.training_maps is sisr."""
        inputs = {"manifest": f"results/data/{dataset}/manifest.csv", "lr": self.lr_dir(dataset, train=train)}
        if (registry.correspondence_recipe(self.config) == "official"
                and self.config["official"]["training_maps"] == "sisr"):
            # the SISR content extractor: the model the correspondence-trained models start from
            parent = next(registry.get(m).parent for m in registry.names()
                          if registry.get(m).correspondence and registry.get(m).init == "content_extractor")
            inputs["sisr"] = self.checkpoint(parent, train)
        return inputs

    def figures_inputs(self, dataset: str) -> dict[str, list[str] | str]:
        # the models' figures: external methods are in the tables only
        return {"csv": self.eval_csvs([dataset], self.models), "json": self.eval_jsons([dataset], self.models),
                "sr": [f"results/sr/{dataset}/{m}" for m in self.models],
                "manifest": f"results/data/{dataset}/manifest.csv", "images": f"results/data/{dataset}/images",
                "lr": self.lr_dir(dataset), "tiers": f"results/tiers/{dataset}.csv",
                "learned": [self.checkpoint(m) for m in self.learned]}

    # ----------------------------------------------------------------------- ablations
    def variant_lr(self, dataset: str, name: str) -> str:
        """The variant's test LR (only the test split is read at inference)."""
        return self.lr_dir(dataset, test=variants.settings(self.config, self.variants[name])["test"])

    def variant_checkpoints(self, name: str) -> dict[str, str]:
        """The variant's checkpoint (of its training degradation), and the SISR model's when it
        matches in the SR domain."""
        v = self.variants[name]
        s = variants.settings(self.config, v)
        if not registry.get(v["model"]).has_weights:
            return {}
        return {"checkpoint": self.checkpoint(v["model"], s["train"]),
                **self.sisr_input(v["model"], s["degrade"], s["train"])}

    def variant_outputs(self, dataset: str, name: str) -> dict[str, str]:
        root = f"results/ablation/{dataset}/{name}"
        return {"sr": f"{root}/sr", "csv": f"{root}.csv", "json": f"{root}.json"}

    def ablation_base_csvs(self) -> list[str]:
        """The main runs the variants are compared with (checks the variants first)."""
        variants.check_variants(self.config)
        models = sorted({v["model"] for v in self.variants.values()})
        return self.eval_csvs(models=models) if models else []

    def ablation_runs(self, key: str = "csv") -> list[str]:
        """Each variant's evaluation CSV (``key`` csv) or SR folder (``sr``: its alignment
        counts, read by the ablation table), datasets outer, variants inner."""
        return [self.variant_outputs(ds, name)[key] for ds in self.eval_datasets for name in self.variants]

    def match_study_datasets(self) -> list[str]:
        """The evaluation datasets the match study can use: those of kind embedded."""
        return [ds for ds in self.eval_datasets if self.config["datasets"][ds]["kind"] == "embedded"]

    def ablation_targets(self) -> list[str]:
        variants.check_variants(self.config)
        out = []
        if self.variants:
            out += ["results/tables/ablation.csv", "results/figures/ablation_deltas.png"]
        return out + [f"results/tables/match_accuracy_{ds}.csv" for ds in self.match_study_datasets()]
