"""Reporting: tables, plots and leaderboards built from records.

Reads records only: uses the leaves and metric definitions from `unlearnkit.evaluation`, never models
(`unlearnkit.core`, `unlearnkit.methods`, `unlearnkit.running`); see docs/architecture.md.
"""
