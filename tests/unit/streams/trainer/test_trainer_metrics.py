"""The trainer's Prometheus metrics and their HTTP endpoint."""

from __future__ import annotations

import logging
import socket
import urllib.request

from rtrank.streams.trainer.metrics import TrainerMetrics, serve_metrics


def value(metrics: TrainerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_each_round_adds_its_steps_and_fresh_examples() -> None:
    metrics = TrainerMetrics()
    metrics.trained(steps=2, examples=300)
    metrics.trained(steps=1, examples=40)
    assert value(metrics, "rtrank_trainer_steps_total") == 3
    assert value(metrics, "rtrank_trainer_examples_total") == 340


def test_publishing_sets_the_version_and_counts_it_by_kind() -> None:
    metrics = TrainerMetrics()
    metrics.publishing(7, snapshot=True)
    metrics.publishing(8, snapshot=False)
    assert value(metrics, "rtrank_trainer_published_version") == 8
    assert value(metrics, "rtrank_trainer_published_total", kind="snapshot") == 1
    assert value(metrics, "rtrank_trainer_published_total", kind="delta") == 1


def test_lag_is_the_highwater_minus_the_next_offset_to_read_per_partition() -> None:
    metrics = TrainerMetrics()
    metrics.behind({0: 120, 1: 50}, {0: 100, 1: 50})
    assert value(metrics, "rtrank_trainer_lag", partition="0") == 20
    assert value(metrics, "rtrank_trainer_lag", partition="1") == 0


def test_a_partition_whose_highwater_is_unknown_yet_has_no_lag() -> None:
    metrics = TrainerMetrics()
    metrics.behind({0: None}, {0: 100})
    assert value(metrics, "rtrank_trainer_lag", partition="0") is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_metrics_are_served_over_http_on_the_port_set() -> None:
    metrics = TrainerMetrics()
    metrics.publishing(3, snapshot=True)
    port = free_port()
    server = serve_metrics(metrics, port, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert "rtrank_trainer_published_version 3.0" in body


def test_the_metrics_listen_on_the_address_set_only() -> None:
    server = serve_metrics(TrainerMetrics(), free_port(), "127.0.0.1")
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()


def test_port_zero_serves_nothing() -> None:
    assert serve_metrics(TrainerMetrics(), 0, "127.0.0.1") is None


def test_a_taken_port_leaves_training_without_the_endpoint_and_says_so(caplog) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with caplog.at_level(logging.WARNING):
            assert serve_metrics(TrainerMetrics(), port, "127.0.0.1") is None
    assert f"not served on port {port}" in caplog.text
