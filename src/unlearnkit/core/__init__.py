"""Core: models, training, gradients, distillation, saving and loading, models prepared at training time.

Uses only `unlearnkit.data` and the leaf modules (see docs/architecture.md).
"""
