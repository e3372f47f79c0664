"""Quality benchmark: the model and both baselines, trained and tested in one run.

    rtrank bench quality ../shared/data/amazon_games.txt

Trains SASRec (`rtrank.model.train`), fits the popularity and transition baselines on the items
the final model learnt from (the training part, plus the validation items when the model
was refit on them), and ranks every user's test item under both protocols
(`rtrank.model.evaluate`). The model selected by validation, before its refit, is tested too
("selected"), so the refit's effect is measured in the same run. The report prints as a
table or as one JSON object.

On Amazon Games the test stage scores lower than validation for every model trained on the
training part alone: the test items are each user's latest, and popularity learnt from the
training part fits them less (21% of test targets occur fewer than 5 times in training,
17% of validation targets, and those are rarely hit). Hence the refit on the validation
items (`rtrank.model.train`). Latest figures: docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rtrank.model.baselines import Popular, Transitions
from rtrank.model.evaluate import PROTOCOLS, Metrics, Scorer, evaluate, make_eval_set, model_scorer
from rtrank.model.sasrec import SASRecConfig
from rtrank.model.train import Dataset, TrainConfig, train


@dataclass
class QualityReport:
    dataset: str
    results: list[dict[str, Any]]  # one per (model, protocol); keys as in to_json
    machine: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)  # the model's epochs
    refit_epochs: int = 0  # epochs on training + validation items after the selection
    selected: list[dict[str, Any]] = field(default_factory=list)  # rtrank before the refit

    def to_json(self) -> str:
        return json.dumps(
            {
                "dataset": self.dataset,
                "results": self.results,
                "refit_epochs": self.refit_epochs,
                "selected": self.selected,
                "machine": self.machine,
            }
        )

    def table(self) -> str:
        """Fixed-width table, one row per (model, protocol), then the machine."""
        head = (
            f"{'model':<12} {'protocol':<11} {'hit@10':>7} {'ndcg@10':>8} {'mrr':>7} "
            f"{'train_s':>8}  device"
        )
        lines = [f"dataset: {self.dataset}", head, "-" * len(head)]
        for label, r in [(r["model"], r) for r in self.results] + [
            ("(selected)", r) for r in self.selected
        ]:
            lines.append(
                f"{label:<12} {r['protocol']:<11} {r['hit@10']:>7.4f} {r['ndcg@10']:>8.4f} "
                f"{r['mrr']:>7.4f} {r['train_seconds']:>8.1f}  {r['device']}"
            )
        if self.refit_epochs:
            lines.append(
                f"rtrank: the best validation epoch (selected), then {self.refit_epochs} refit "
                "epochs on training + validation items; the baselines count both parts too"
            )
        m = self.machine
        lines.append(
            f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}"
            + (f", {m['gpu']}" if m.get("gpu") else "")
        )
        return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    """CPU model, core count, torch version and GPU name (if any) of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "torch": torch.__version__, "gpu": gpu}


def run_quality(
    data: Dataset,
    model_config: SASRecConfig,
    train_config: TrainConfig,
    on_epoch: Callable[[dict], None] | None = None,
    out: str | None = None,
) -> QualityReport:
    """Trains the model and the baselines on ``data`` and tests all under both protocols;
    with ``out``, the trained model is also saved there (a checkpoint, as `rtrank train`)."""
    n = len(data.vocab)
    result = train(data, model_config, train_config, on_epoch=on_epoch, out=out)
    known = data.split.before_test() if result.refit else data.split.train
    scorers: list[tuple[str, Scorer, float, str]] = [
        ("rtrank", model_scorer(result.model), result.seconds, result.device)
    ]
    for name, cls in (("popular", Popular), ("transitions", Transitions)):
        start = time.monotonic()
        scorer = cls(known.values(), n)
        scorers.append((name, scorer, time.monotonic() - start, "cpu"))
    selected = [] if result.selected is None else [model_scorer(result.selected)]
    rows, selected_rows = [], []
    for protocol in PROTOCOLS:
        test_set = make_eval_set(data.split, "test", protocol, n, train_config.seed)
        for name, scorer, seconds, device in scorers:
            rows.append(_row(name, protocol, evaluate(scorer, test_set), seconds, device))
        for scorer in selected:
            m = evaluate(scorer, test_set)
            selected_rows.append(_row("selected", protocol, m, result.seconds, result.device))
    return QualityReport(
        data.name, rows, machine_info(), result.history, len(result.refit), selected_rows
    )


def _row(model: str, protocol: str, m: Metrics, seconds: float, device: str) -> dict[str, Any]:
    return {
        "model": model,
        "protocol": protocol,
        **m.as_dict(),
        "train_seconds": round(seconds, 2),
        "device": device,
    }


def plot_history(history: list[dict[str, Any]], path: str, title: str = "") -> None:
    """Writes validation NDCG@10 per epoch as a PNG (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["valid"]["ndcg@10"] for h in history], marker="o", label="valid NDCG@10")
    ax.plot(epochs, [h["valid"]["hit@10"] for h in history], marker=".", label="valid Hit@10")
    ax.set_xlabel("epoch")
    ax.set_ylabel("metric")
    ax.set_title(title or "training curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
