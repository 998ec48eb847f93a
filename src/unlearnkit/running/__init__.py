"""Running many models: experiments, benchmarks, executors, model populations and tuning.

May use every layer below it (see docs/architecture.md).
"""
