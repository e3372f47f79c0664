"""``rtrank bench rerank PATH``: what diversity costs in accuracy, offline.

    rtrank bench rerank /work/shared/data/amazon_games.txt --plot rerank.png
    rtrank bench rerank PATH --checkpoint games.safetensors --users 5000 --json

Replays PATH leave-one-out (test stage): per evaluated user, the model ranks the whole
catalogue (history excluded), its top ``--candidates`` go through the re-rank stage
(`rtrank.streams.scorer.rerank.rerank`, MMR over the model's item embeddings, no business
rules), and for each lambda the top-10 is scored: NDCG@10 of the held-out item, intra-list
similarity (mean pairwise cosine of the list's item embeddings) and catalogue coverage@10
(distinct items in all lists / catalogue size). Without ``--checkpoint`` a model is trained first
for ``--minutes``. A random subset of ``--users`` users keeps the run short; the output
says how many were evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import click
import numpy as np
import torch

from rtrank.model.checkpoint import load_checkpoint
from rtrank.model.data import FORMATS
from rtrank.model.evaluate import ndcg_at_k
from rtrank.model.sasrec import SASRecConfig
from rtrank.model.serving import encode_histories
from rtrank.model.train import Dataset, TrainConfig, load_dataset, train
from rtrank.streams.scorer.rerank import Candidate, RerankConfig, rerank

K = 10
DEFAULT_LAMBDAS = "1.0,0.9,0.7,0.5,0.3"


@dataclass(frozen=True)
class Row:
    lam: float
    ndcg: float
    intra_list_similarity: float
    coverage: float

    def as_dict(self) -> dict[str, float]:
        return {
            "lambda": self.lam,
            "ndcg@10": round(self.ndcg, 4),
            "intra_list_similarity": round(self.intra_list_similarity, 4),
            "coverage@10": round(self.coverage, 4),
        }


def intra_list_similarity(vectors: np.ndarray) -> float:
    """Mean pairwise cosine similarity of a list's item vectors (n, D); 0 for n < 2."""
    n = len(vectors)
    if n < 2:
        return 0.0
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T  # (n, n)
    return float((sim.sum() - np.trace(sim)) / (n * (n - 1)))


def evaluate_lambdas(
    model: torch.nn.Module,
    data: Dataset,
    lambdas: list[float],
    users: int,
    candidates: int,
    seed: int = 0,
) -> tuple[list[Row], int]:
    """One row per lambda over a random subset of ``users`` test users; and that count."""
    all_users, histories, targets = data.split.eval_inputs("test")
    order = np.random.default_rng(seed).permutation(len(all_users))[:users]
    emb = model.item_emb.weight.detach().float().cpu().numpy()  # (V, D)
    num_items = emb.shape[0] - 1
    lists: dict[float, list[list[int]]] = {lam: [] for lam in lambdas}
    ranks: dict[float, list[int]] = {lam: [] for lam in lambdas}  # K = not in the list
    for start in range(0, len(order), 256):
        idx = order[start : start + 256]
        hist = [histories[i] for i in idx]
        top_scores, top_rows = model.top_k(encode_histories(model, hist), candidates, exclude=hist)
        for b, i in enumerate(idx):
            cands = [
                Candidate(str(r), s)
                for r, s in zip(top_rows[b].tolist(), top_scores[b].tolist(), strict=True)
            ]
            vectors = {c.item_id: emb[int(c.item_id)] for c in cands}
            for lam in lambdas:
                shown = [
                    int(x.item_id)
                    for x in rerank(cands, RerankConfig(k=K, lam=lam), vectors=vectors)
                ]
                lists[lam].append(shown)
                ranks[lam].append(shown.index(targets[i]) if targets[i] in shown else K)
    rows = []
    for lam in lambdas:
        ils = [intra_list_similarity(emb[shown]) for shown in lists[lam]]
        covered = {r for shown in lists[lam] for r in shown}
        rows.append(
            Row(
                lam,
                ndcg_at_k(torch.tensor(ranks[lam]), K),
                float(np.mean(ils)),
                len(covered) / num_items,
            )
        )
    return rows, len(order)


def plot_tradeoff(rows: list[Row], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    ils = [r.intra_list_similarity for r in rows]
    left.plot(ils, [r.ndcg for r in rows], marker="o")
    right.plot([r.coverage for r in rows], [r.ndcg for r in rows], marker="o")
    for r in rows:
        left.annotate(f"λ={r.lam:g}", (r.intra_list_similarity, r.ndcg))
        right.annotate(f"λ={r.lam:g}", (r.coverage, r.ndcg))
    left.set(xlabel="intra-list similarity (lower = more diverse)", ylabel="NDCG@10 (full)")
    right.set(xlabel="catalogue coverage@10", ylabel="NDCG@10 (full)")
    from matplotlib.ticker import MaxNLocator

    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.ticklabel_format(useOffset=False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.command("rerank")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True)
@click.option(
    "--checkpoint",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="model to evaluate [default: train one for --minutes]",
)
@click.option("--minutes", type=float, default=2.0, show_default=True, help="training budget")
@click.option("--users", type=int, default=3000, show_default=True, help="test users evaluated")
@click.option("--candidates", type=int, default=50, show_default=True, help="model top-N")
@click.option("--lambdas", default=DEFAULT_LAMBDAS, show_default=True)
@click.option(
    "--save",
    type=click.Path(dir_okay=False),
    default=None,
    help="also write the trained model here (reuse it with --checkpoint)",
)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="trade-off PNG")
def rerank_command(
    path: str,
    fmt: str,
    checkpoint: str | None,
    minutes: float,
    users: int,
    candidates: int,
    lambdas: str,
    save: str | None,
    as_json: bool,
    plot: str | None,
) -> None:
    """NDCG@10, intra-list similarity and coverage@10 of MMR re-ranking for a lambda grid."""
    grid = [float(x) for x in lambdas.split(",") if x.strip()]
    if checkpoint:
        ckpt = load_checkpoint(checkpoint, torch.device("cpu"))
        data, model = load_dataset(path, fmt, ckpt.vocab), ckpt.model
    else:
        data = load_dataset(path, fmt)
        config = SASRecConfig(num_items=len(data.vocab))
        model = train(data, config, TrainConfig(max_minutes=minutes, device="cpu"), out=save).model
    rows, evaluated = evaluate_lambdas(model.eval(), data, grid, users, candidates)
    if plot:
        plot_tradeoff(rows, plot, f"MMR re-ranking on {data.name} ({evaluated} users)")
    if as_json:
        click.echo(
            json.dumps(
                {"rows": [r.as_dict() for r in rows], "users": evaluated, "candidates": candidates}
            )
        )
        return
    click.echo(
        f"{evaluated} of {len(data.split.test)} test users (random subset), "
        f"top-{candidates} candidates, full-catalogue ranking, K={K}"
    )
    click.echo(f"{'lambda':>8}{'NDCG@10':>10}{'ILS':>8}{'coverage@10':>13}")
    for r in rows:
        click.echo(
            f"{r.lam:>8.2f}{r.ndcg:>10.4f}{r.intra_list_similarity:>8.3f}{r.coverage:>13.3f}"
        )
