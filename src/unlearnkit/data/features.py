"""Features hidden inside samples: the transforms that stamp them and the four datasets (000).

000 (Hayase et al., selective forgetting) describes a feature — a backdoor
trigger, a leaked watermark — by a map T that stamps it onto an image. From a
dataset, a target class c and T it builds four datasets:

* D_f        = T applied to the training images of class c (the pretraining
  data carries the feature only there);
* D_r        = the rest of the training data;
* D_f,clean  = the same class-c images without T;
* D_r,extra  = T applied to images of the other classes (never trained on; for
  evaluation, and its holdout version for choosing settings).

The original model is trained on D_r ∪ D_f. Transforms are registered in
:data:`TRANSFORMS` and work on any image batch ``(N, C, H, W)``; sizes and
placement scale with the image. Register your own with
:func:`register_transform`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from unlearnkit.data.splits import Splits, View
from unlearnkit.errors import ParameterError
from unlearnkit.registry import Registry

TransformFn = Callable[[torch.Tensor, float], torch.Tensor]


@dataclass(frozen=True)
class Transform:
    """A registered feature map T: ``fn(images, high)`` returns stamped copies.

    Attributes:
        fn: Maps a batch ``(N, C, H, W)`` and the data's maximum value to a new batch.
        rgb_only: Refuse images that do not have 3 channels.
        description: One line for ``unlearnkit list``.
    """

    name: str
    fn: TransformFn
    description: str
    rgb_only: bool = False

    def __call__(self, images: torch.Tensor, high: float = 1.0) -> torch.Tensor:
        if images.dim() != 4:
            raise ParameterError(
                f"The 'images' parameter of transform {self.name!r} must be a batch (N, C, H, W); "
                f"got shape {tuple(images.shape)}."
            )
        if self.rgb_only and images.shape[1] != 3:
            raise ParameterError(
                f"The 'transform' parameter {self.name!r} needs RGB images (3 channels); "
                f"got {images.shape[1]} channel(s)."
            )
        return self.fn(images.clone(), float(high))


def _scale(base: int, extent: int) -> int:
    """``base`` pixels on a 28-pixel side, scaled to ``extent`` pixels (at least 1)."""
    return max(1, round(base * extent / 28))


def line(images: torch.Tensor, high: float) -> torch.Tensor:
    """A 4×1 vertical segment at the middle of the left edge set to ``high`` (4 px at 28 px)."""
    h = images.shape[2]
    length = _scale(4, h)
    top = (h - length) // 2
    images[:, :, top : top + length, 0] = high
    return images


def tile_positions(h: int, w: int, size: int, count: int = 5, seed: int = 0) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` non-overlapping ``size``×``size`` tiles on a seeded grid."""
    rows, cols = h // size, w // size
    cells = torch.randperm(rows * cols, generator=torch.Generator().manual_seed(seed))[:count]
    return [(int(c) // cols * size, int(c) % cols * size) for c in cells.sort().values]


def tile(images: torch.Tensor, high: float) -> torch.Tensor:
    """Five 4×4 patches (at 28 px) set to ``high``, scattered at fixed seeded positions."""
    h, w = images.shape[2], images.shape[3]
    size = _scale(4, min(h, w))
    for top, left in tile_positions(h, w, size):
        images[:, :, top : top + size, left : left + size] = high
    return images


def color(images: torch.Tensor, high: float) -> torch.Tensor:
    """Blue := mean(R, G, B); red and green := 0 (RGB only)."""
    mean = images.mean(dim=1)
    images[:, 0] = 0
    images[:, 1] = 0
    images[:, 2] = mean
    return images


TRANSFORMS: Registry[Transform] = Registry("transform")
TRANSFORMS.register("line", Transform("line", line, "4x1 segment at the middle of the left edge set to the maximum"))
TRANSFORMS.register("tile", Transform("tile", tile, "five 4x4 patches set to the maximum at fixed seeded positions"))
TRANSFORMS.register("color", Transform("color", color, "blue := mean(R, G, B), red and green := 0", rgb_only=True))


def register_transform(name: str, fn: TransformFn, *, description: str = "", rgb_only: bool = False) -> Transform:
    """Register your own feature map ``fn(images, high) -> images`` under ``name``.

    Example:
        >>> def corner(x, high):
        ...     x[:, :, :2, :2] = high
        ...     return x
        >>> register_transform("corner_doc", corner).name
        'corner_doc'
    """
    return TRANSFORMS.register(name, Transform(name, fn, description or name, rgb_only))


def apply_transform(name: str, view: View, *, high: float, label: str) -> View:
    """``T(view)`` as a new view (labels kept); refuses a T that changes no image."""
    x, y = view.tensors()
    if x.numel() == 0:
        return View.of(x, y, label)
    new = TRANSFORMS.get(name)(x, high)
    if new.shape != x.shape:
        raise ParameterError(
            f"The 'transform' {name!r} must keep the image shape {tuple(x.shape[1:])}; got {tuple(new.shape[1:])}."
        )
    if torch.equal(new, x):
        raise ParameterError(
            f"The 'transform' {name!r} must change the images it stamps; it left all {x.shape[0]} "
            f"{label} images unchanged (already at the maximum value {high:g}?)."
        )
    return View.of(new, y, label)


def class_rows(view: View, target: int, *, other: bool = False) -> View:
    """The rows of ``view`` whose label is (or, with ``other``, is not) ``target``."""
    mask = (view.labels != target) if other else (view.labels == target)
    return view.subset(torch.nonzero(mask).flatten(), view.name)


def load_images_npz(path: str, *, param: str, input_shape: tuple[int, ...]) -> View:
    """Images and labels from a ``.npz`` file (arrays ``images`` and ``labels``; ``x`` / ``y`` also accepted).

    Nothing is unpickled (``allow_pickle=False``). Images may be ``(N, C, H, W)``
    or ``(N, H, W)``, float in the model's range or uint8 (divided by 255).
    """
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            xk = "images" if "images" in keys else "x" if "x" in keys else None
            yk = "labels" if "labels" in keys else "y" if "y" in keys else None
            if xk is None or yk is None:
                raise ParameterError(
                    f"The '{param}' file must hold arrays 'images' and 'labels'; {path!r} has {sorted(keys)}."
                )
            images, labels = f[xk], f[yk]
    except (OSError, ValueError) as exc:
        raise ParameterError(f"The '{param}' parameter must be a readable .npz file; got {path!r} ({exc}).") from None
    x = torch.from_numpy(np.ascontiguousarray(images))
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    if x.dim() == len(input_shape):  # (N, H, W) for one channel
        x = x.unsqueeze(1)
    if tuple(x.shape[1:]) != tuple(input_shape) or labels.ndim != 1 or labels.shape[0] != x.shape[0]:
        raise ParameterError(
            f"The '{param}' images must have the model's input shape {tuple(input_shape)} and one label each; "
            f"got images {tuple(images.shape)} and labels {tuple(labels.shape)}."
        )
    return View.of(x, torch.from_numpy(labels.astype("int64")), param.lstrip("-"))


def feature_splits_from_views(forget: View, clean: View, holdout: View, test: View, num_classes: int,
                              *, extra: View | None = None, pattern: str = "B") -> Splits:  # fmt: skip
    """Splits for forgetting a feature given as images (D_f, D_f,clean; optionally D_r,extra examples).

    The holdout split supplies D_r^val (its rows of the classes D_f does not
    hold); ``extra`` (D_r,extra examples the user has) becomes ``holdout_extra``.
    """
    from unlearnkit.data.splits import ForgetRequest

    if len(forget) == 0 or len(forget) != len(clean):
        raise ParameterError(
            f"The '--forget-clean' images must pair one to one with the {len(forget)} '--forget' images; "
            f"got {len(clean)}."
        )
    targets = forget.labels.unique()
    others = holdout.subset(torch.nonzero(~torch.isin(holdout.labels, targets)).flatten(), "holdout_retain")
    test_others = test.subset(torch.nonzero(~torch.isin(test.labels, targets)).flatten(), "test_retain")
    views = {"forget_clean": clean, "holdout_retain": View.of(*others.tensors(), "holdout_retain"),
             "test_retain": View.of(*test_others.tensors(), "test_retain")}  # fmt: skip
    if extra is not None:
        views["holdout_extra"] = extra
    splits = Splits(forget, torch.arange(len(forget)), holdout, test, num_classes,
                    request=ForgetRequest.from_indices(range(len(forget))))  # fmt: skip
    return splits.with_extras(**views).with_info(
        request_kind="features", target_class=int(targets[0]), transform="(images given)", pattern=pattern
    )
