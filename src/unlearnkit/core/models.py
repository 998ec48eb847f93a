"""The model registry and helpers that make any ``nn.Module`` with a final
linear layer usable.

Registered models (all subclasses of :class:`Classifier`, which exposes the
penultimate ``features(x)`` and the final ``head``):

* ``mlp`` — fully connected, configurable ``widths`` (default one hidden layer of 50).
* ``lenet`` — LeNet-style: two 5x5 conv layers (6 / 16 channels) and FC 120-84.
* ``isometric_mlp`` — 000's deep MLP (10 layers as wide as the input, normalised hard-tanh).
* ``cnn`` — small CIFAR-style CNN: conv ``channels`` (default 32 / 64, 3x3), FC of ``width`` units (default 128).

For a user's own model, :func:`find_head` locates the final ``nn.Linear`` and
:func:`penultimate` reads its input with a hook that is always removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from unlearnkit.errors import ParameterError
from unlearnkit.registry import Registry
from unlearnkit.validation import Constraint, Interval, IntSequence, validate_parameters


class Classifier(nn.Module):
    """A classifier ``head(features(x))`` whose head is an ``nn.Linear``."""

    head: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features, shape ``(B, head.in_features)``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # type: ignore[no-any-return]


class MLP(Classifier):
    """Multi-layer perceptron on flattened inputs."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, widths: Sequence[int] = (50,)) -> None:
        super().__init__()
        d = 1
        for s in input_shape:
            d *= int(s)
        layers: list[nn.Module] = [nn.Flatten()]
        for w in widths:
            layers += [nn.Linear(d, int(w)), nn.ReLU()]
            d = int(w)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # type: ignore[no-any-return]


class LeNet(Classifier):
    """LeNet-style CNN: conv(6, 5x5) - pool - conv(16, 5x5) - pool - FC 120 - FC 84 - head.

    The second conv is padded on small inputs (under 20 px, e.g. 8x8 digits) so
    that the feature map does not vanish.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        c, h, w = _chw(input_shape, "lenet")
        pad2 = 0 if min(h, w) >= 20 else 2
        self.conv = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=pad2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        flat = _flat_size(self.conv, (c, h, w))
        self.fc = nn.Sequential(nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU())
        self.head = nn.Linear(84, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))  # type: ignore[no-any-return]


class CNN(Classifier):
    """Small CIFAR-style CNN: [conv3x3-ReLU-pool] x2 (``channels``, default 32 / 64), FC ``width``, head.

    004's CNN is ``channels=(16, 32)`` with ``width`` = p ∈ {64, 256, 1024}.
    """

    def __init__(
        self, input_shape: Sequence[int], num_classes: int, width: int = 128, channels: Sequence[int] = (32, 64)
    ) -> None:
        super().__init__()
        c, h, w = _chw(input_shape, "cnn")
        c1, c2 = (int(v) for v in channels)
        self.conv = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.fc = nn.Sequential(nn.Linear(_flat_size(self.conv, (c, h, w)), width), nn.ReLU())
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))  # type: ignore[no-any-return]


class NormalizedHardTanh(nn.Module):
    """000's normalised hard-tanh φ(x) = g·x where s·g·|x| < 1, else g·sign(x)/(s·g) (the continuous form).

    000 prints ``g·sign(x)`` for the saturated branch, which jumps at the
    threshold; ``g·sign(x)/(s·g) = sign(x)/s`` is where ``g·x`` reaches the
    threshold, so φ is ``clamp(g·x, −1/s, 1/s)``.
    """

    def __init__(self, s2: float = 0.125, g: float = 1.0013) -> None:
        super().__init__()
        self.s, self.g = s2**0.5, g

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(self.g * x, -1.0 / self.s, 1.0 / self.s)


class OrthogonalLinear(nn.Linear):
    """A linear layer initialised with an orthogonal weight and zero bias (re-initialisation keeps it so)."""

    def reset_parameters(self) -> None:
        nn.init.orthogonal_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class IsometricMLP(Classifier):
    """000's MLP: ``depth`` fully connected layers as wide as the input, normalised hard-tanh, orthogonal init.

    ``depth - 1`` hidden layers of ``width`` units (default: the input size,
    784 on MNIST), then the head; zero biases; no normalisation layers.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 10, width: int | None = None) -> None:
        super().__init__()
        d = 1
        for s in input_shape:
            d *= int(s)
        w = int(width) if width is not None else d
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(int(depth) - 1):
            layers += [OrthogonalLinear(d, w), NormalizedHardTanh()]
            d = w
        self.body = nn.Sequential(*layers)
        self.head = OrthogonalLinear(d, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # type: ignore[no-any-return]


def _chw(input_shape: Sequence[int], name: str) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ParameterError(
            f"The 'input_shape' parameter of {name} must be (channels, height, width); got {tuple(input_shape)}."
        )
    c, h, w = (int(s) for s in input_shape)
    return c, h, w


def _flat_size(module: nn.Module, chw: tuple[int, int, int]) -> int:
    with torch.no_grad():
        return int(module(torch.zeros(1, *chw)).shape[1])


@dataclass(frozen=True)
class ModelSpec:
    """How to build a registered model: a factory plus its keyword constraints."""

    name: str
    factory: Callable[..., Classifier]
    description: str
    constraints: dict[str, Constraint] = field(default_factory=dict)
    # The SGD learning rate the command line trains it with when --lr is not given: the deep isometric MLP
    # diverges at the 0.05 that suits the shallow models.
    default_lr: float = 0.05
    # The optimiser it is trained with when --optimizer is not given (the text models train with Adam).
    default_optimizer: str = "sgd"
    # What it reads: "continuous" inputs (images, features) or "tokens" (int64 token ids of a text dataset).
    input_kind: str = "continuous"
    # What it returns: "classes" (B, k) or "sequence" (B, V, L) — a language model's next-token logits.
    outputs: str = "classes"


MODELS: Registry[ModelSpec] = Registry("model")
MODELS.register(
    "mlp", ModelSpec("mlp", MLP, "MLP on flattened input; widths=(50,) hidden units", {"widths": IntSequence(1)})
)
MODELS.register(
    "isometric_mlp",
    ModelSpec(
        "isometric_mlp",
        IsometricMLP,
        "000's MLP: depth=10 FC layers of width=input size, normalised hard-tanh, orthogonal init",
        {"depth": Interval(int, 2, None), "width": Interval(int, 1, None)},
        default_lr=0.01,
    ),
)
MODELS.register("lenet", ModelSpec("lenet", LeNet, "LeNet-style CNN: conv 6/16 (5x5), FC 120-84"))
MODELS.register(
    "cnn",
    ModelSpec(
        "cnn",
        CNN,
        "small CIFAR-style CNN: conv channels=(32, 64) (3x3), FC width=128",
        {"width": Interval(int, 1, None), "channels": IntSequence(1, length=2)},
    ),
)


def init_weights(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every submodule that has ``reset_parameters``, seeded.

    Used both when a model is built and when ``retrain`` starts from scratch,
    so the retrained reference starts from exactly the original's initial weights.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        for m in model.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset) and m is not model:
                reset()
    return model


def build_model(name: str, input_shape: Sequence[int], num_classes: int, *, seed: int = 0, **kwargs: Any) -> Classifier:
    """Build a registered model with seeded initial weights.

    Example:
        >>> m = build_model("mlp", (1, 8, 8), 10, seed=0, widths=(32,))
        >>> m(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 10])
    """
    spec = MODELS.get(name)
    validate_parameters(f"model {name!r}", kwargs, spec.constraints)
    if isinstance(kwargs.get("widths"), list):
        kwargs["widths"] = tuple(kwargs["widths"])
    with torch.random.fork_rng(devices=[]):  # construction draws default inits: keep the caller's RNG
        model = spec.factory(tuple(input_shape), int(num_classes), **kwargs)
    init_weights(model, seed)
    return model


def build_model_for(dataset: Any, name: str, *, seed: int = 0, **kwargs: Any) -> Classifier:
    """:func:`build_model` for ``dataset``'s inputs and classes, with the options its data fix (a vocabulary size)."""
    kind = MODELS.get(name).input_kind
    if kind != dataset.input_kind:
        raise ParameterError(
            f"The 'model' parameter must name a model of {dataset.input_kind} inputs for the {dataset.name!r} "
            f"dataset; {name!r} reads {kind} (unlearnkit list models)."
        )
    return build_model(
        name, dataset.input_shape, dataset.num_classes, seed=seed, **{**dataset.model_options, **kwargs}
    )


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode, without gradients; every submodule's own train/eval flag is put back after.

    ``model.train(was_training)`` would set one flag on the whole tree, losing a
    user's mixed modes (a frozen BatchNorm in eval inside a training model).
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            yield model
    finally:
        for m, mode in modes:
            m.training = mode


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Replace the submodule called ``name`` (dotted path, as in ``named_modules``) by ``new``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def find_head(model: nn.Module, example: torch.Tensor | None = None) -> tuple[str, nn.Linear]:
    """The final linear layer of ``model``: the ``nn.Linear`` applied last.

    Its ``head`` attribute when that is an ``nn.Linear``; else, with ``example``
    (a batch of inputs), the ``nn.Linear`` whose forward runs last on it, traced
    by forward hooks that are removed even when forward raises — registration
    order says nothing about the order a user's ``forward`` applies layers in;
    without ``example``, the last ``nn.Linear`` registered.
    """
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return "head", head
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ParameterError(
            f"The 'model' parameter must contain a final nn.Linear layer; {type(model).__name__} has none."
        )
    if example is None:
        return linears[-1]
    called: list[int] = []
    handles = [m.register_forward_hook(lambda _m, _i, _o, k=k: called.append(k)) for k, (_, m) in enumerate(linears)]
    try:
        with evaluating(model):
            model(example)
    finally:
        for h in handles:
            h.remove()
    if not called:
        raise ParameterError(
            f"The 'model' parameter must apply an nn.Linear layer last; {type(model).__name__}'s forward calls none."
        )
    return linears[called[-1]]


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Penultimate features of any model: the input of its final linear layer.

    Reads them through a forward pre-hook that is removed even if forward raises.
    """
    if isinstance(model, Classifier):
        return model.features(x)
    _, head = find_head(model, x[:1])
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        captured.append(args[0])

    handle = head.register_forward_pre_hook(hook)
    try:
        model(x)
    finally:
        handle.remove()
    return captured[-1].flatten(1)


def model_hash(model: nn.Module) -> str:
    """SHA-256 over the state dict (names, dtypes, shapes and values)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def num_outputs(model: nn.Module) -> int:
    return int(find_head(model)[1].out_features)
