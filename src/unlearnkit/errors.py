"""Typed exceptions for everything a user can cause.

Every error a user can trigger is a subclass of :class:`UnlearnkitError`, which
is itself a :class:`ValueError`, so ``except ValueError`` keeps working. The CLI
turns any of them into exit status 2 with the message on one line.
"""

from __future__ import annotations


class UnlearnkitError(ValueError):
    """Base class of all user-facing errors raised by unlearnkit."""


class ParameterError(UnlearnkitError):
    """A parameter has a value outside its declared constraint."""


class UnknownNameError(UnlearnkitError):
    """A name (method, dataset, model, metric, scenario) is not registered."""


class RequestError(UnlearnkitError):
    """A forget request cannot be resolved against the training data."""


class CheckpointError(UnlearnkitError):
    """A saved model is missing, damaged, or does not match the architecture."""


class DataError(UnlearnkitError):
    """Dataset files are missing or malformed."""


class OutputExistsError(UnlearnkitError):
    """An output location already holds results that must not be overwritten."""


class DivergenceError(UnlearnkitError):
    """A method's loss became non-finite: its settings are too aggressive for this model."""


class UnsupportedRequestError(UnlearnkitError):
    """A method cannot handle the kind of forget request it was given."""


class NoTrialCompletedError(ParameterError):
    """A tuning search ended without one complete trial: every setting it tried failed or was pruned."""
