"""Core: models, training, gradients, distillation, saving and loading, models prepared at training time.

Uses only `unlearnkit.data` and the leaf modules (see docs/architecture.md).
"""

# The text classifiers register themselves in MODELS beside the image models.
# The LSTM language model of the canary experiments (003 §G) registers itself too.
from unlearnkit.core import lm as _lm  # noqa: F401
from unlearnkit.core import text as _text  # noqa: F401
