"""The device benchmark's table on a tiny catalogue (figures are never asserted)."""

from __future__ import annotations

import torch

from rtrank.model.device_bench import measure, table


def test_every_way_of_serving_and_the_trainer_get_a_row_per_batch_size() -> None:
    rows = measure(torch.device("cpu"), items=[300], batches=[4, 8], rounds=1)
    assert [(r.path, r.index, r.batch) for r in rows] == [
        ("cold", "exact", 4),
        ("cold", "exact", 8),
        ("cold", "bf16", 4),
        ("cold", "bf16", 8),
        ("cold", "ivf", 4),
        ("cold", "ivf", 8),
        ("warm", "exact", 4),
        ("warm", "exact", 8),
        ("train", "", 4),
        ("train", "", 8),
    ]
    assert all(r.per_s > 0 and r.ms_per_batch > 0 and r.items == 300 for r in rows)


def test_the_table_names_the_device_and_has_a_line_per_row() -> None:
    rows = measure(torch.device("cpu"), items=[300], batches=[4], indexes=["exact"], rounds=1)
    lines = table(rows, "cpu").splitlines()
    assert lines[0].startswith("device: cpu")
    assert len(lines) == 2 + len(rows) + 1
