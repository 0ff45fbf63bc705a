"""Pretrained weights fetched ahead of time, for compute nodes without internet.

``snakemake download_weights`` (a local rule: it runs where Snakemake runs, e.g. a login
node) or ``refsr download-weights`` puts every ImageNet weight file the pipeline would
otherwise download (for the official recipe also MatConvNet's ``imagenet-vgg-verydeep-19.mat``,
:mod:`refsr.features.matconvnet`) into torch's hub cache (``$TORCH_HOME/hub/checkpoints``, by default
``~/.cache/torch/hub/checkpoints``). :func:`refsr.vgg.load_vgg19` and
:class:`refsr.metrics.LPIPSMetric` look there first, so jobs never need the network. The
cache must be on a file system the compute nodes see (home directories usually are; else
point ``TORCH_HOME`` at a shared directory for both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from refsr.core.errors import RefsrError

#: name -> (URL, what needs it). torchvision's files are hash-named (their name carries a
#: SHA-256 prefix); the others are checked against :data:`MD5`.
WEIGHTS = {
    "vgg19": ("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
              "VGG19 ImageNet (similarity tiers, SRNTT features, perceptual and texture losses)"),
    "lpips_alex": ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                   "AlexNet ImageNet (the LPIPS backbone)"),
    "vgg19_matconvnet": ("https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-19.mat",
                         "MatConvNet VGG19 (recipe official: matching, swapped maps, perceptual and "
                         "texture losses, as the released SRNTT; 510 MB)"),
}
#: MD5 of the files whose name carries no hash: the one published for MatConvNet's current
#: imagenet-vgg-verydeep-19.mat (no SHA-256 is published for it).
MD5 = {"vgg19_matconvnet": "106118b7cf60435e6d8e04f6a6dc3657"}
#: What ``download()`` fetches when given no names: the 510 MB MatConvNet file only on request
#: (or when a config of the official recipe needs it, :func:`needed`).
DEFAULT = ("vgg19", "lpips_alex")

#: What a message about a missing weight file tells the user to do.
OFFLINE_HINT = ("run `snakemake download_weights` (or `refsr download-weights`) on a machine "
                "with internet")


def cache_path(name: str) -> Path:
    """Where torch's hub cache keeps weight ``name`` (honours ``TORCH_HOME``)."""
    import torch.hub

    url = _url(name)
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]


def needed(config: Mapping) -> list[str]:
    """The weights a (validated) pipeline config downloads: those it names no local file for."""
    out = []
    if not config.get("vgg19_weights"):
        out.append("vgg19")
    official = config.get("official") or {}
    if config.get("recipe") == "official" and not official.get("vgg19_mat"):
        out.append("vgg19_matconvnet")
    evaluation = config.get("evaluation") or {}
    if evaluation.get("lpips", True) and not evaluation.get("lpips_weights"):
        out.append("lpips_alex")
    return out


def download(names: Iterable[str] | None = None, progress: bool = False) -> dict[str, Path]:
    """Fetch ``names`` (default: :data:`DEFAULT`) into the hub cache unless already there; their paths.

    Downloads are hash-checked (against the file name, as torchvision does, or :data:`MD5`)
    and written atomically (a temporary file renamed into place).
    """
    import torch.hub

    paths = {}
    for name in list(DEFAULT) if names is None else list(names):
        url, dst = _url(name), cache_path(name)
        if not dst.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            match = torch.hub.HASH_REGEX.search(dst.name)
            try:
                if name in MD5:
                    _download_md5(url, dst, MD5[name], progress)
                else:
                    torch.hub.download_url_to_file(url, str(dst), match.group(1) if match else None,
                                                   progress=progress)
            except RefsrError:
                raise
            except Exception as err:  # URLError, HTTPError, hash mismatch, disk full, ...
                detail = " ".join(f"{type(err).__name__}: {err}".split())[:200]
                raise RefsrError(url, f"download of the {name} weights failed ({detail}); "
                                      "this needs a machine with internet") from None
        paths[name] = dst
    return paths


def _download_md5(url: str, dst: Path, md5: str, progress: bool) -> None:
    """``url`` to ``dst`` through a temporary file that is renamed only when its MD5 matches."""
    import hashlib
    import os

    import torch.hub

    tmp = dst.with_name(f".{dst.name}.partial")
    try:
        torch.hub.download_url_to_file(url, str(tmp), None, progress=progress)
        h = hashlib.md5(usedforsecurity=False)
        with open(tmp, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != md5:
            raise RefsrError(url, f"downloaded file has MD5 {h.hexdigest()}, expected {md5}; not kept")
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _url(name: str) -> str:
    if name not in WEIGHTS:
        raise RefsrError(name, f"unknown weights; choose from {', '.join(WEIGHTS)}")
    return WEIGHTS[name][0]
