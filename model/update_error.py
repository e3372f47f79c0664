"""Why a model update was refused, in a module of its own: the workers' and the trainer's
processes check and sign updates without loading torch (`rtrank.model.updates`, which
applies them, does)."""

from __future__ import annotations


class UpdateError(ValueError):
    """An update cannot be applied: ``reason`` names why (corrupt, stale, out_of_order,
    incompatible, non_finite; the wire adds unsigned, bad_signature, too_large)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
