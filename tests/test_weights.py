"""Offline compute nodes: `refsr download-weights` / `snakemake download_weights` fill the torch
hub cache; with it, jobs load weights without the network; without it, the error names the
target to run. The network is mocked throughout: nothing is downloaded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from refsr.cli import main as cli
from refsr.core.errors import RefsrError
from refsr.features import weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """An empty torch cache (TORCH_HOME) and no network: any URL open raises URLError."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("REFSR_VGG19_WEIGHTS", raising=False)
    monkeypatch.delenv("REFSR_LPIPS_ALEX_WEIGHTS", raising=False)
    calls = []

    def no_network(url, *args, **kwargs):
        calls.append(getattr(url, "full_url", url))
        raise urllib.error.URLError("network is unreachable (test)")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(torch.hub, "urlopen", no_network)  # torch.hub imported its own name
    from refsr.features import vgg

    vgg._CACHE.clear()
    yield calls
    vgg._CACHE.clear()


@pytest.fixture
def fake_download(monkeypatch, vgg_weights):
    """torch.hub's downloader replaced by a copy of local files (VGG19: the offline conv1..3
    weights; AlexNet: random tensors of the right shapes)."""
    fetched = []

    def download_url_to_file(url, dst, hash_prefix=None, progress=True):
        fetched.append(url)
        if "vgg19" in url:
            shutil.copy(vgg_weights, dst)
        else:
            from torchvision.models import alexnet

            torch.save(alexnet().state_dict(), dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download_url_to_file)
    return fetched


def test_urls_are_torchvisions():
    from torchvision.models import VGG19_Weights

    from refsr.evaluation.lpips import ALEXNET_URL

    assert weights.WEIGHTS["vgg19"][0] == VGG19_Weights.IMAGENET1K_V1.url
    assert weights.WEIGHTS["lpips_alex"][0] == ALEXNET_URL


def test_needed_follows_the_config():
    assert weights.needed({"vgg19_weights": None}) == ["vgg19", "lpips_alex"]
    assert weights.needed({"vgg19_weights": "v.pth", "evaluation": {"lpips": False}}) == []
    assert weights.needed({"evaluation": {"lpips_weights": "a.pth"}}) == ["vgg19"]


def test_missing_vgg_weights_offline_name_the_target(offline):
    from refsr.features.vgg import load_vgg19

    with pytest.raises(RefsrError) as err:
        load_vgg19(("relu3_1",))
    assert "snakemake download_weights" in str(err.value) and "refsr download-weights" in str(err.value)
    assert offline  # the download was attempted, and refused


def test_missing_lpips_weights_offline_name_the_target(offline):
    from refsr.evaluation.lpips import LPIPSMetric

    metric = LPIPSMetric(allow_download=True)
    assert not metric.available
    assert "snakemake download_weights" in metric.reason


def test_download_weights_fills_the_cache_then_jobs_run_offline(offline, fake_download, tmp_path, capsys):
    assert cli(["download-weights", "--quiet"]) == 0
    paths = json.loads(capsys.readouterr().out)
    assert set(paths) == {"vgg19", "lpips_alex"}
    for name, path in paths.items():
        assert Path(path) == weights.cache_path(name) and Path(path).is_file()
        assert Path(path).parent == tmp_path / "torch" / "hub" / "checkpoints"
    assert len(fake_download) == 2

    assert cli(["download-weights", "--quiet", "--only", "vgg19"]) == 0  # cached: no new download
    assert len(fake_download) == 2

    # offline (urlopen raises) the pipeline's loaders now find everything in the cache
    from refsr.evaluation.lpips import LPIPSMetric
    from refsr.features.vgg import TORCHVISION_SOURCE, load_vgg19

    vgg = load_vgg19(("relu1_1", "relu3_1"))
    assert vgg.weights_source == TORCHVISION_SOURCE
    metric = LPIPSMetric(allow_download=False)
    assert metric.available, metric.reason
    assert not offline  # nothing tried the network


def test_failed_download_is_one_line(offline, capsys):
    assert cli(["download-weights", "--quiet", "--only", "lpips_alex"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("refsr: error: https://download.pytorch.org/models/alexnet") and "\n" not in err
    assert not list((Path(weights.cache_path("lpips_alex")).parent).glob("*"))  # nothing partial


@pytest.mark.slow
def test_download_weights_rule_runs_on_a_filled_cache(tmp_path, vgg_weights):
    """`snakemake download_weights` is a local rule, always run, offline once the cache is full."""
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    for name in weights.WEIGHTS:  # what an earlier download left (content irrelevant here)
        shutil.copy(vgg_weights, cache / weights.WEIGHTS[name][0].rsplit("/", 1)[1])
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    env = {**__import__("os").environ, "TORCH_HOME": str(tmp_path / "torch")}
    snakemake = str(Path(sys.executable).parent / "snakemake")
    for _ in range(2):  # no output file: it runs every time it is asked for
        proc = subprocess.run([snakemake, "download_weights", "--cores", "1", "-s",
                               str(ROOT / "workflow/Snakefile")], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "localrule download_weights" in proc.stdout + proc.stderr
    log = (tmp_path / "results/logs/download_weights.log").read_text()
    assert "vgg19:" in log and "lpips_alex:" in log
