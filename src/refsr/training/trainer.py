"""Resumable training of the SISR baselines and SRNTT.

Chains (the parents in :mod:`refsr.models.registry`): ``srresnet`` → ``srgan`` (initialised from srresnet);
``srresnet`` → ``srntt_l2`` (content extractor from srresnet, reconstruction only)
→ ``srntt`` (initialised from srntt_l2, all losses: the paper's warm-up then GAN phase).

Every ``checkpoint_every`` iterations the complete training state (model, critic,
optimisers, iteration, log rows) is written atomically to ``state_path`` — a path
outside Snakemake's outputs, so a failed or killed job keeps it. A new run with
the same configuration fingerprint resumes from it; since batches and the
gradient penalty's randomness are functions of (seed, iteration), the resumed run
ends with the same weights as an uninterrupted one (on CPU). The state carries a
:func:`~refsr.models.checkpoint.content_digest`; a state whose digest is missing or does not
match (a damaged file) is ignored with a warning and training starts afresh.

A state is resumed only by the same job (issue 28, case 1: a stale state was resumed after the
training data or the parent checkpoint changed, since the fingerprint covered the config only).
Its fingerprint (:func:`job_digests`) covers everything the weights depend on: the config's
:meth:`~refsr.training.config.TrainConfig.fingerprint`, a digest of the training data (every
pair's name and the size and modification time of its HR, reference, LR and cached
correspondence files: a rebuilt input counts as changed, and no image is read) and a sha256 of the
parent checkpoint's bytes. A state of a different job logs one line, ``<state>: state of a
different job (<what> changed); training from scratch``, and is not used. After the final
checkpoint and log are written (atomically), :meth:`Trainer.write_outputs` removes the state, so
a finished run leaves nothing that a later, different job could pick up.

Preemption: :func:`train_model` traps SIGTERM (what SLURM sends on preemption, at the
time limit and on ``scancel``) and SIGUSR1: the current iteration finishes, the state is
saved and :class:`Preempted` (a :class:`RefsrError`: the job exits non-zero) is raised, so
Snakemake's retry resumes from the state.

Data parallel: given a :class:`refsr.training.parallel.DistContext` (one of several processes
under ``torchrun``, see :mod:`refsr.training.distributed`), each rank trains on its slice of every
batch, gradients are averaged across ranks after each backward pass, and rank 0 alone
writes the state, the checkpoint and the log. With one process nothing changes.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from refsr.core.atomic import atomic_path
from refsr.core.device import torch_device
from refsr.core.errors import RefsrError
from refsr.data.lr import lr_path
from refsr.features.vgg import load_vgg19
from refsr.matching import SWAP_SCALES, swap_batch
from refsr.models import registry
from refsr.models.checkpoint import (
    DIGEST_KEY,
    arch_config,
    build_model,
    content_digest,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from refsr.models.discriminator import Discriminator
from refsr.training.config import TrainConfig
from refsr.training.data import TrainingSet, batch_indices, collate, correspondence_path
from refsr.training.losses import GeneratorLoss, LossConfig, discriminator_loss
from refsr.training.parallel import DistContext
from refsr.training.preemption import Preempted, preemption_signals

log = logging.getLogger(__name__)

def swapped_maps(batch: dict, ref_feats: dict, device) -> tuple[dict, torch.Tensor]:
    """M maps for a batch from cached correspondences, and S* normalised per image to [0, 1].

    One batched stitching call per layer (:func:`refsr.matching.swap_batch`); the same maps as
    swapping each sample on its own.
    """
    corrs = [corr.to(device) for corr in batch["corr"]]
    maps = swap_batch(corrs, {layer: ref_feats[layer] for layer in SWAP_SCALES},
                      out_hw=tuple(batch["hr"].shape[-2:]))
    s = torch.stack([corr.score for corr in corrs]).clamp_min(0)
    s_star = s / s.flatten(1).max(1).values.clamp_min(1e-6)[:, None, None]
    return maps, s_star[:, None]


#: What a training state's fingerprint covers (:func:`job_digests`), as its mismatch message names it.
JOB_PARTS = {"config": "configuration", "data": "training data", "parent": "parent checkpoint"}


def _stat_key(path: Path) -> str:
    """``size:mtime_ns`` of ``path`` (``missing`` if it cannot be read: training will say so)."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def data_digest(data) -> str:
    """Digest of a :class:`TrainingSet`'s files, cheaply: per pair its name and the size and
    modification time of its HR, reference, LR and (if cached) correspondence file."""
    h = hashlib.sha256()
    lr_dir, corr_dir = Path(data.lr_dir), data.corr_dir
    h.update(f"corr={corr_dir is not None}\n".encode())
    for pair in data.pairs:
        files = [Path(pair.input), Path(pair.ref), lr_path(lr_dir, "train", pair.name)]
        if corr_dir is not None:
            files.append(correspondence_path(Path(corr_dir), pair.name))
        h.update("\t".join([pair.name, *(f"{p.name}={_stat_key(p)}" for p in files)]).encode() + b"\n")
    return h.hexdigest()[:16]


def file_digest(path: str | os.PathLike | None) -> str:
    """sha256 of a file's bytes (the parent checkpoint), ``none`` without one."""
    if path is None:
        return "none"
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return "missing"
    return h.hexdigest()[:16]


def job_digests(cfg: TrainConfig, data, init_ckpt: str | os.PathLike | None) -> dict[str, str]:
    """What a training run's weights depend on (keys of :data:`JOB_PARTS`): the config's
    fingerprint, the training data's digest and the parent checkpoint's."""
    return {"config": cfg.fingerprint(), "data": data_digest(data), "parent": file_digest(init_ckpt)}


def job_fingerprint(parts: dict[str, str]) -> str:
    """One fingerprint of :func:`job_digests`'s parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _seeded(seed: int):
    """Initialise weights from ``seed`` without touching (or depending on) the global RNG.

    Other code that draws from the global RNG in between (building a VGG the first time,
    say) must not change a model's initial weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _initialise(model, name: str, init_ckpt: str | None, recipe: str | None = None) -> None:
    spec = registry.get(name, recipe=recipe)
    if spec.parent is None:
        return
    parent, mode = spec.parent, spec.init
    if init_ckpt is None:
        raise RefsrError(name, f"needs the trained {parent} checkpoint to start from")
    src, ckpt = load_checkpoint(init_ckpt, expected=parent)
    theirs = str(ckpt.get("recipe", registry.get(parent).recipe))
    if theirs != spec.recipe:
        raise RefsrError(init_ckpt, f"checkpoint of {parent} in recipe {theirs}, but {name} trains in "
                                    f"recipe {spec.recipe}: its parent must be of the same recipe")
    if mode == "content_extractor":
        model.load_content_extractor(src.state_dict(), source=str(init_ckpt))
    else:
        load_weights(model, src.state_dict(), where=str(init_ckpt))
    log.info("%s initialised from %s (%s)", name, init_ckpt, mode)


class Trainer:
    """One model's training loop; :meth:`run` trains to ``cfg.iterations`` and returns the model.

    The interface of a training method (a registry entry's ``trainer``; this class is the
    default): ``__init__(cfg, data, state_path, init_ckpt=None, vgg_weights=None, dist=None)``
    builds (or resumes) everything; :meth:`run` trains, checkpointing its state every
    ``cfg.checkpoint_every`` iterations and honouring ``stop_requested``; :meth:`write_outputs`
    writes the final checkpoint and the log; ``model``, ``vgg`` (or None) and ``is_main``.
    """

    def __init__(self, cfg: TrainConfig, data: TrainingSet, state_path: str | os.PathLike,
                 init_ckpt: str | None = None, vgg_weights: str | None = None,
                 dist: DistContext | None = None):
        self.cfg, self.data, self.state_path = cfg, data, Path(state_path)
        self.dist, self.init_ckpt = dist, init_ckpt
        self.device = torch_device(cfg.device, "config key device") if dist is None else dist.device_for(cfg.device)
        self.refsr = registry.get(cfg.model).uses_reference
        self.loss_cfg = LossConfig.from_dict(cfg.loss, model=cfg.model, where="loss", recipe=cfg.recipe)
        with _seeded(cfg.seed):
            self.model = build_model(cfg.model, cfg.arch, where="arch", recipe=cfg.recipe).to(self.device)
        _initialise(self.model, cfg.model, init_ckpt, cfg.recipe)
        layers = set(self.loss_cfg.vgg_layers()) | (set(SWAP_SCALES) if self.refsr else set())
        self.vgg = None
        if layers:
            self.vgg = load_vgg19(layers=tuple(sorted(layers)), weights=vgg_weights, device=self.device)
        self.disc = self.disc_opt = None
        if self.loss_cfg.adversarial > 0:
            with _seeded(cfg.seed + 1):
                self.disc = Discriminator(**cfg.disc).to(self.device)
            self.disc_opt = torch.optim.Adam(self.disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.loss = GeneratorLoss(self.loss_cfg, vgg=self.vgg, disc=self.disc)
        self.iteration = 0
        self.rows: list[dict] = []
        self._resume()

    # ------------------------------------------------------------------ state
    @property
    def job(self) -> dict[str, str]:
        """This run's :func:`job_digests` (computed once: the inputs as training started)."""
        if "_job" not in self.__dict__:
            self._job = job_digests(self.cfg, self.data, getattr(self, "init_ckpt", None))
        return self._job

    def _state(self) -> dict:
        state = {"fingerprint": job_fingerprint(self.job), "job": dict(self.job), "iteration": self.iteration,
                 "model": self.model.state_dict(), "opt": self.opt.state_dict(), "rows": self.rows}
        if self.disc is not None:
            state["disc"] = self.disc.state_dict()
            state["disc_opt"] = self.disc_opt.state_dict()
        return state

    def save_state(self) -> None:
        state = self._state()
        state[DIGEST_KEY] = content_digest(state)
        with atomic_path(self.state_path) as tmp:
            torch.save(state, tmp)

    def _resume(self) -> None:
        if not self.state_path.is_file():
            return
        try:
            state = torch.load(self.state_path, map_location=self.device, weights_only=True)
        except Exception as err:  # noqa: BLE001 - a damaged state is discarded, not fatal
            log.warning("ignoring unreadable training state %s (%s)", self.state_path, err)
            return
        if not isinstance(state, dict) or state.get(DIGEST_KEY) != content_digest(state):
            log.warning("ignoring training state %s: no digest, or it does not match the contents "
                        "(a damaged file); starting afresh", self.state_path)
            return
        theirs = state.get("job") if isinstance(state.get("job"), dict) else {}
        if state.get("fingerprint") != job_fingerprint(self.job) or theirs != self.job:
            changed = [what for key, what in JOB_PARTS.items() if theirs.get(key) != self.job[key]]
            log.warning("%s: state of a different job (%s changed); training from scratch",
                        self.state_path, ", ".join(changed) or "fingerprint")
            return
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        if self.disc is not None:
            self.disc.load_state_dict(state["disc"])
            self.disc_opt.load_state_dict(state["disc_opt"])
        self.iteration, self.rows = int(state["iteration"]), list(state["rows"])
        log.info("resumed %s from iteration %d (%s)", self.cfg.model, self.iteration, self.state_path)

    # ------------------------------------------------------------------ steps
    def _batch(self, it: int) -> dict:
        idx = batch_indices(len(self.data), self.cfg.batch_size, self.cfg.seed, it)
        if self.dist is not None:
            idx = self.dist.shard(idx)
        batch = collate([self.data[i] for i in idx])
        for key in ("hr", "lr", "ref"):
            batch[key] = batch[key].to(self.device)
        return batch

    def step(self, it: int) -> dict:
        batch = self._batch(it)
        maps = s_star = None
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        if self.refsr:
            with torch.no_grad():
                ref_feats = self.vgg(batch["ref"])
            maps, s_star = swapped_maps(batch, ref_feats, self.device)
        with autocast:
            sr = self.model(batch["lr"], maps) if self.refsr else self.model(batch["lr"])
        sr = sr.float()
        row = {}
        if self.disc is not None:
            gen = torch.Generator(device=self.device).manual_seed(self.cfg.seed * 7919 + it)
            d_terms = discriminator_loss(self.disc, batch["hr"], sr.detach(), self.loss_cfg.gp, generator=gen)
            self.disc_opt.zero_grad(set_to_none=True)
            d_terms["total"].backward()
            self._average_gradients(self.disc)
            self.disc_opt.step()
            row.update({"d_wgan": d_terms["wgan"].item(), "d_gp": d_terms["gp"].item()})
        terms = self.loss(sr, batch["hr"], maps=maps, s_star=s_star)
        self.opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        self._average_gradients(self.model)
        self.opt.step()
        row.update({k: v.item() for k, v in terms.items()})
        with torch.no_grad():
            mse = F.mse_loss(sr.clamp(0, 1), batch["hr"]).item()
        row["train_psnr"] = -10.0 * torch.log10(torch.tensor(max(mse, 1e-12))).item()
        return row if self.dist is None else self.dist.mean_of(row)

    def run(self, on_iteration: Callable[[int], None] | None = None,
            stop_requested: Callable[[], int] | None = None):
        """Train up to ``cfg.iterations``. ``stop_requested()`` (see :func:`preemption_signals`)
        is polled after every iteration: non-zero saves the state and raises :class:`Preempted`."""
        cfg = self.cfg
        log.info("training %s: %d iterations, batch %d, %d pairs, device %s", cfg.model,
                 cfg.iterations, cfg.batch_size, len(self.data), self.device)
        _ = self.job  # the inputs' digests as training starts (every state saved carries them)
        t0, done_at_start = time.perf_counter(), self.iteration
        while self.iteration < cfg.iterations:
            it = self.iteration
            row = self.step(it)
            self.iteration = it + 1
            elapsed = time.perf_counter() - t0
            row.update({"iteration": self.iteration, "lr": row.get("lr", cfg.lr),
                        "it_per_s": (self.iteration - done_at_start) / max(elapsed, 1e-9)})
            self.rows.append(row)
            if self.iteration % cfg.log_every == 0 or self.iteration == cfg.iterations:
                terms = " ".join(f"{k}={v:.4g}" for k, v in row.items() if k not in ("iteration", "lr"))
                log.info("%s it %d/%d %s", cfg.model, self.iteration, cfg.iterations, terms)
            if self.iteration % cfg.checkpoint_every == 0 and self.is_main:
                self.save_state()
            if on_iteration is not None:
                on_iteration(self.iteration)
            if stop_requested is not None:
                self._stop_if_requested(stop_requested())
        return self.model

    # ------------------------------------------------------ preemption, data parallel
    @property
    def is_main(self) -> bool:
        """Whether this process writes files: the only process, or rank 0 of several."""
        return self.dist is None or self.dist.rank == 0

    def _average_gradients(self, module) -> None:
        if self.dist is not None:
            self.dist.average_gradients(module)

    def _stop_if_requested(self, signum: int) -> None:
        if self.dist is not None:
            signum = self.dist.max_int(signum)  # every rank stops after the same iteration
        if not signum:
            return
        if self.is_main:
            self.save_state()
        if self.dist is not None:
            self.dist.barrier()
        raise Preempted(self.state_path, f"{signal.Signals(signum).name} received: {self.cfg.model} "
                                         f"stopped at iteration {self.iteration}/{self.cfg.iterations} "
                                         "with its training state saved here; a re-run resumes from it")

    def write_outputs(self, checkpoint: str | os.PathLike, log_csv: str | os.PathLike,
                      provenance: dict | None = None) -> None:
        """The final checkpoint and the per-iteration CSV log (both atomic), then the training
        state is removed: a finished run leaves no state for a later job to resume."""
        extra = {"iterations": self.iteration, "fingerprint": self.cfg.fingerprint(),
                 "train_config": json.dumps(asdict(self.cfg)), **(provenance or {})}
        save_checkpoint(checkpoint, self.model.cpu(), self.cfg.model, self.model_arch(), extra=extra,
                        recipe=self.cfg.recipe)
        write_log_csv(log_csv, self.rows)
        if self.state_path.exists():
            self.state_path.unlink()
            log.info("%s finished: removed its training state %s", self.cfg.model, self.state_path)

    def model_arch(self) -> dict:
        return arch_config(self.cfg.model, self.cfg.arch, recipe=self.cfg.recipe)


def write_log_csv(path: str | os.PathLike, rows: list[dict]) -> None:
    """Rows of per-iteration values as CSV, columns in first-seen order."""
    cols: list[str] = ["iteration"]
    for row in rows:
        cols += [k for k in row if k not in cols]
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def trainer_class(model: str, recipe: str | None = None) -> type:
    """The training loop of registered model ``model`` (its registry entry's ``trainer``)."""
    module, _, cls = registry.get(model, recipe=recipe).trainer.partition(":")
    return getattr(importlib.import_module(module), cls)


def train_model(cfg: TrainConfig, manifest: str, lr_dir: str, corr_dir: str | None,
                 init_ckpt: str | None, state_path: str, checkpoint: str, log_csv: str,
                 scale: int = 4, vgg_weights: str | None = None, dist: DistContext | None = None):
    """Train ``cfg.model`` on a built dataset (resuming if possible); write checkpoint + log CSV.

    SIGTERM / SIGUSR1 save the state and raise :class:`Preempted`. With ``dist`` this is one
    rank of a data-parallel run (:mod:`refsr.training.distributed`) and rank 0 writes the outputs.
    """
    from refsr.data import read_manifest

    ds = read_manifest(manifest)
    data = TrainingSet(ds, Path(lr_dir), Path(corr_dir) if corr_dir else None, scale=scale)
    trainer = trainer_class(cfg.model, cfg.recipe)(cfg, data, state_path, init_ckpt=init_ckpt,
                                       vgg_weights=vgg_weights, dist=dist)
    t0 = time.perf_counter()
    with preemption_signals() as stop_requested:
        trainer.run(stop_requested=stop_requested)
    provenance = {"train_dataset": ds.name, "train_seconds": time.perf_counter() - t0}
    if trainer.vgg is not None:
        provenance["vgg19_weights"] = trainer.vgg.weights_source
    provenance.update(getattr(trainer, "provenance", {}))  # a training method's own (TTSR: its LTE's init)
    if dist is not None:
        dist.check_replicas(trainer.model)  # every rank must end with the same weights
        provenance["processes"] = dist.world
    if trainer.is_main:
        trainer.write_outputs(checkpoint, log_csv, provenance)
    return trainer
