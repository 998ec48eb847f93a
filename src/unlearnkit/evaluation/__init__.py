"""Evaluation: outputs collected once per model and split; metrics, attacks and tests as pure functions of them.

Uses `unlearnkit.core`, `unlearnkit.data` and the leaves; never `unlearnkit.methods` (see docs/architecture.md).
"""
