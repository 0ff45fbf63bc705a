"""Published CUFED5 numbers: every entry cited and well-formed, and :func:`comparable` says
why a row cannot be compared (model, protocol, LR resize, level) or lets it through."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from refsr.core.config import validate
from refsr.data.layout import EVAL_LEVELS
from refsr.evaluation.protocol import PRESETS
from refsr.models import registry
from refsr.report import paper
from refsr.stages.tables import run_tables

LEVELS = list(EVAL_LEVELS)
ENTRY = paper.Published("X-net", "srntt", 25.0, 0.25, "L1", "basicsr", "paper", "made up",
                        "https://x", resize="pil")


def _with(**kw) -> paper.Published:
    return dataclasses.replace(ENTRY, **kw)


def test_every_entry_is_cited_and_well_formed():
    assert paper.PUBLISHED
    for p in paper.PUBLISHED:
        assert p.url.startswith("https://") and p.source.strip(), p.method
        assert p.protocol is None or p.protocol in PRESETS, p.method
        assert p.level is None or p.level in EVAL_LEVELS, p.method
        assert p.resize is None or p.resize in paper.RESIZES, p.method
        assert p.weights in ("released", "paper"), p.method
        assert p.model is None or registry.get(p.model).name == p.model, p.method
        assert 0 < p.psnr < 60 and (math.isnan(p.ssim) or 0 < p.ssim <= 1), p.method
        if p.protocol is not None and p.level is not None:
            assert not p.unmatched, p.method  # 'unmatched' only explains a missing match
    assert len({p.method for p in paper.PUBLISHED}) == len(paper.PUBLISHED)


def test_masa_rec_entry_says_why_it_matches_no_preset():
    by = {p.method: p for p in paper.PUBLISHED}
    masa = by["MASA-rec, MASA-SR CVPR 2021 (paper)"]
    assert (masa.model, masa.psnr, masa.ssim, masa.resize) == ("masa_rec", 27.54, 0.814, "pil")
    assert masa.protocol is None and masa.level is None
    assert "MASA-SR/issues/2" in masa.url
    why = paper.comparable(masa, "basicsr", LEVELS, ["masa_rec"], resize="pil")
    assert why == masa.unmatched and "no refsr preset" in why and "ALL_STITCHED" in why


def test_ttsr_released_numbers_need_pil_lr():
    by = {p.method: p for p in paper.PUBLISHED}
    rec = by["TTSR-rec (TTSR-rec.pt)"]
    assert rec.resize == "pil"
    assert paper.comparable(rec, "ttsr", LEVELS, ["ttsr_rec"], resize="pil") is None
    assert paper.comparable(rec, "ttsr", LEVELS, ["ttsr_rec"], resize="matlab") == (
        "LR resize differs (published: pil bicubic; this run: matlab bicubic)")


@pytest.mark.parametrize("entry, run, expected", [
    (ENTRY, dict(models=["bicubic"]), "not run here (srntt not in this run's models)"),
    (_with(model=None), {}, "not run here (method not in this run's models)"),
    (_with(protocol=None), {}, "the source does not state its evaluation protocol"),
    (_with(protocol=None, unmatched="its own crop"), {}, "its own crop"),
    (ENTRY, dict(protocol="refsr"), "protocol differs (published: basicsr; this run: refsr)"),
    (ENTRY, dict(resize="matlab"), "LR resize differs (published: pil bicubic; this run: matlab bicubic)"),
    (_with(level=None), {}, "the source does not state its reference set"),
    (_with(level=None, unmatched="five stacked tiles"), {}, "five stacked tiles"),
    (ENTRY, dict(levels=["L2", "ALL"]), "level L1 not evaluated in this run"),
    (ENTRY, {}, None),  # same protocol, resize, level and model
    (_with(resize=None), dict(resize="matlab"), None),  # resize not known: not a reason
])
def test_comparable_reasons(entry, run, expected):
    kw = dict(protocol="basicsr", levels=LEVELS, models=["srntt", "bicubic"], resize="pil") | run
    assert paper.comparable(entry, kw["protocol"], kw["levels"], kw["models"],
                            resize=kw["resize"]) == expected


def test_paper_table_compares_only_at_the_same_resize(tmp_path, monkeypatch):
    from test_tables import MODELS, outputs, write_evals

    same = _with(method="P-net", protocol="refsr")
    other = _with(method="M-net", protocol="refsr", resize="matlab")
    monkeypatch.setattr(paper, "PUBLISHED", (same, other))
    config = validate({"scale": 4, "resize": "pil", "vgg19_weights": None,
                       "evaluation": {"y_channel": True, "crop": 4, "main_level": "L1"}})
    csvs = write_evals(tmp_path, dataset="cufed")
    out = outputs(tmp_path, paper_table=True)
    run_tables(csvs, config, MODELS, ["cufed"], out, paper_dataset="cufed")
    df = pd.read_csv(out["paper_csv"], keep_default_na=False).set_index("method")
    assert bool(df.loc["P-net", "comparable"]) is True and df.loc["P-net", "resize"] == "pil"
    assert float(df.loc["P-net", "delta_psnr"]) == pytest.approx(26.0 - 25.0)  # srntt at L1 = 26
    assert bool(df.loc["M-net", "comparable"]) is False
    assert df.loc["M-net", "why_not"] == "LR resize differs (published: matlab bicubic; this run: pil bicubic)"
    assert str(df.loc["M-net", "delta_psnr"]) == "nan"
    assert "LR resize differs" in out["paper_md"].read_text()
