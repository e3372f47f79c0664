"""The quality benchmark compares models on the same data."""

from __future__ import annotations

from dataclasses import replace

from rtrank.model.quality import run_quality
from rtrank.model.sasrec import SASRecConfig
from rtrank.model.train import TrainConfig, make_dataset

QUICK = TrainConfig(epochs=1, batch_size=64, device="cpu")


def popular_full_hit(report) -> float:
    (row,) = [r for r in report.results if (r["model"], r["protocol"]) == ("popular", "full")]
    return row["hit@10"]


def test_baselines_count_validation_items_when_the_model_is_refit():
    # "P" is the validation item of 20 users and the test item of 20 others; every other
    # item occurs once. Only counts that include validation items know P is popular.
    seqs = {f"a{u}": [f"a{u}-1", f"a{u}-2", "P", f"a{u}-3"] for u in range(20)}
    seqs |= {f"b{u}": [f"b{u}-1", f"b{u}-2", f"b{u}-3", "P"] for u in range(20)}
    data = make_dataset(seqs)
    cfg = SASRecConfig(num_items=len(data.vocab), dim=8, max_len=5)
    selected_only = run_quality(data, cfg, replace(QUICK, refit_epochs=0))
    refit = run_quality(data, cfg, replace(QUICK, refit_epochs=1))
    assert popular_full_hit(selected_only) < 0.25 < popular_full_hit(refit)


def test_report_keeps_the_selected_model_figures_beside_the_refit_ones():
    seqs = {f"u{u}": [f"i{(u + k) % 12}" for k in range(6)] for u in range(30)}
    data = make_dataset(seqs)
    cfg = SASRecConfig(num_items=len(data.vocab), dim=8, max_len=8)
    report = run_quality(data, cfg, QUICK)
    assert report.refit_epochs == QUICK.refit_epochs
    assert {r["protocol"] for r in report.selected} == {"sampled100", "full"}
    assert "(selected)" in report.table()
