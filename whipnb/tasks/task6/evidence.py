"""Task 6 evidence: one verdict per bug, from behaviour rather than source text.

Most partial fixes stop with an exception, and the exception hides every bug
further down the pipeline.  So each verdict first uses what the run itself
showed (the :mod:`~whipnb.tasks.task6.probe` record: the shapes that reached
the first convolution, the fc layer and the loss, and where it raised) and,
where the run never got that far, the grader's own probes of the objects the
script left behind:

* does the learner's model accept a batch of images of the size the learner
  feeds it (size bug),
* does a tensor in the namespace hold the training labels as class indices
  (label bug),
* does the learner's ``evaluate`` function give each single image a batch
  dimension, tried with a stand-in model that accepts only batches (batch bug).

Every call into learner code made here is silenced and may fail without harm.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from whipnb.tasks.common import HELD_OUT_DATA, Evaluation, evaluate_classifier
from whipnb.tasks.task6.data import IMAGE_SIZE, NUM_CLASSES, make_data, make_samples
from whipnb.tasks.task6.probe import ModelCall, ProbeRecord, Shape, ShapeProbe, error_text

CHANNELS = 3
HELD_OUT_SEED = 6_006
HELD_OUT_SIZE = 1_000
SELECTION_SIZE = 250
#: Resampling a learner may have used to shrink 32x32 images; the grader tries each.
RESIZE_MODES = ("bilinear", "nearest", "area", "bicubic")
#: Images are compared at this coarse resolution, where noise and the resize
#: method hardly matter but horizontal and vertical strokes still differ.
MATCH_GRID = 8
MATCH_MARGIN = 0.05
MATCH_FLOOR = 0.75
#: Below this, neither way round matches: the pixels were reordered, not moved.
SCRAMBLED_CEILING = 0.5


@dataclass(frozen=True)
class Verdict:
    """Whether one bug is fixed, and the evidence in words."""

    fixed: bool
    detail: str
    #: False when the run never got far enough to show whether the bug is there
    tested: bool = True


@dataclass(frozen=True)
class Feed:
    """How images reached the network's first convolution in one phase of the run."""

    phase: str
    shape: Shape
    channels: int

    @property
    def image(self) -> Shape:
        """The per-image part, ``(C, H, W)`` when all is well."""
        return self.shape[-3:]

    @property
    def layout(self) -> str:
        return image_layout(self.image, self.channels)

    @property
    def single(self) -> Shape | None:
        """One image with a size-1 axis inserted off the front (``(3, 1, S, S)``): the
        image itself, ``(3, S, S)``, else None."""
        if len(self.shape) != 4 or self.shape[0] == 1:
            return None
        squeezed = tuple(n for n in self.shape if n != 1)
        return squeezed if len(squeezed) == 3 and 1 in self.shape[1:] else None

    @property
    def image_layout(self) -> str:
        """The layout of the image itself, also when its batch axis is misplaced."""
        single = self.single
        return self.layout if single is None else image_layout(single, self.channels)

    @property
    def size(self) -> int | None:
        image = self.single or self.image
        return {"CHW": image[1], "HWC": image[0]}.get(self.image_layout)

    def describe(self) -> str:
        return "x".join(str(n) for n in self.shape)


def image_layout(image: Shape, channels: int = CHANNELS) -> str:
    """``CHW``, ``HWC`` (square images with the channels last) or ``other``."""
    if len(image) != 3:
        return "other"
    if image[0] == channels and image[1] == image[2]:
        return "CHW"
    if image[2] == channels and image[0] == image[1]:
        return "HWC"
    return "other"


def feed(calls: list[ModelCall], phase: str) -> Feed | None:
    """The first convolution input seen among ``calls`` (3-D or 4-D)."""
    for call in calls:
        if call.conv_input is not None and len(call.conv_input) in (3, 4):
            return Feed(phase, call.conv_input, call.conv_channels or CHANNELS)
    return None


# --- quiet calls into learner code ---------------------------------------------------


@contextlib.contextmanager
def quietly(model: nn.Module | None = None) -> Iterator[None]:
    """No gradients, no output, and the model back in its own mode afterwards."""
    was_training = model.training if model is not None else False
    sink = io.StringIO()
    try:
        with torch.no_grad(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        if model is not None:
            model.train(was_training)


def try_forward(model: nn.Module, inputs: torch.Tensor) -> tuple[Shape | None, str]:
    """The output shape of ``model(inputs)`` in eval mode, or why it failed."""
    with quietly(model), ShapeProbe() as record:
        try:
            model.eval()
            output = model(inputs)
        except (Exception, SystemExit) as error:
            return None, _failure(record.last_call, error)
    return (tuple(output.shape), "") if isinstance(output, torch.Tensor) else (None, "no tensor")


def _failure(call: ModelCall | None, error: BaseException) -> str:
    """Where a forward pass failed, in the terms of the fc-layer mismatch when that is it."""
    if call is not None and call.raised_in == "Linear" and call.linear_input:
        return (
            f"the fc layer expects {call.linear_features} inputs but gets "
            f"{call.linear_input[-1]} ({error_text(error)})"
        )
    return error_text(error)


def accepts_size(model: nn.Module | None, size: int) -> tuple[bool, str]:
    """Does the model classify a batch of ``size`` x ``size`` images (CHW, or HWC)?"""
    if model is None:
        return False, "no model was found to try"
    first_error = ""
    for shape in ((2, CHANNELS, size, size), (2, size, size, CHANNELS)):
        output, error = try_forward(model, torch.zeros(shape))
        if output is not None and len(output) == 2 and output[0] == 2:
            return True, ""
        first_error = first_error or error
    return False, first_error


def accepts_single_image(model: nn.Module | None, size: int) -> bool:
    """Does the model itself turn one unbatched image into a batch of one prediction?"""
    if model is None:
        return False
    for shape in ((CHANNELS, size, size), (size, size, CHANNELS)):
        output, _ = try_forward(model, torch.zeros(shape))
        if output is not None and len(output) == 2 and output[0] == 1:
            return True
    return False


# --- bug 2: channel order ------------------------------------------------------------------


def _normalised(images: torch.Tensor) -> torch.Tensor:
    flat = F.adaptive_avg_pool2d(images.float(), MATCH_GRID).flatten(1)
    flat = flat - flat.mean(dim=1, keepdim=True)
    return flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-8)


@cache
def _reference() -> torch.Tensor:
    """The training images, CHW, normalised for matching."""
    return _normalised(make_data()[0].permute(0, 3, 1, 2))


def orientation(images: torch.Tensor | None) -> str:
    """Are the CHW images fed in training upright, transposed (H and W swapped),
    scrambled (their pixels reordered: no training image matches either way) or unknown?

    Each image is matched against the training set at a coarse resolution, as
    it is and with height and width swapped; the better match wins.  A correct
    conversion matches at 0.97 or more, a transposed or flipped one at about 0.7,
    ``view``/``reshape`` of HWC data to ``(N, 3, H, W)`` at about 0.3.
    """
    if images is None or images.dim() != 4 or images.shape[1] != CHANNELS:
        return "unknown"
    upright = _best_match(images)
    transposed = _best_match(images.transpose(-2, -1))
    if max(upright, transposed) < SCRAMBLED_CEILING:
        return "scrambled"
    if transposed > upright + MATCH_MARGIN and transposed > MATCH_FLOOR:
        return "transposed"
    if upright > transposed + MATCH_MARGIN and upright > MATCH_FLOOR:
        return "upright"
    return "unknown"


def _best_match(images: torch.Tensor) -> float:
    """Mean over ``images`` of the correlation with their closest training image."""
    return float((_normalised(images) @ _reference().T).max(dim=1).values.mean())


def layout_verdict(train: Feed | None, val: Feed | None, turned: str) -> Verdict:
    if train is None:
        return Verdict(
            False, "no training batch ever reached the network's first convolution", tested=False
        )
    if train.layout != "CHW":
        return Verdict(False, f"training images reached conv1 as {train.describe()}: {_why(train)}")
    if turned == "scrambled":
        return Verdict(
            False,
            f"training images reach conv1 shaped {train.describe()}, but their pixels are "
            "scrambled: none matches a training image, upright or turned. view/reshape to "
            "(N, 3, H, W) reorders the values of HWC data instead of moving the channel axis",
        )
    if turned == "transposed":
        return Verdict(
            False,
            f"training images reach conv1 as {train.describe()}, but with height and width "
            "swapped: the permute moved the axes to (N, C, W, H); use permute(0, 3, 1, 2)",
        )
    if val is not None and val.single is not None and val.image_layout == "CHW":
        return Verdict(
            True,
            f"conv1 received training batches of {train.describe()}; validation gave it a "
            f"CHW image with an extra axis in the wrong place ({val.describe()}: see the batch "
            "dimension)",
        )
    if val is not None and val.layout != "CHW":
        return Verdict(
            False,
            f"training images are CHW, but validation images reached conv1 as "
            f"{val.describe()}: {_why(val)}",
        )
    shown = f"; validation {val.describe()}" if val is not None else ""
    return Verdict(True, f"conv1 received training batches of {train.describe()}{shown}")


def _why(fed: Feed) -> str:
    if fed.layout == "HWC":
        return "channels last (HWC), but Conv2d wants (N, C, H, W)"
    return (
        "not a 3xSxS image at all; was the image resized or permuted along the wrong "
        "axes (resize after converting to CHW)?"
    )


# --- bug 1: image size ----------------------------------------------------------------------


def size_verdict(feeds: list[Feed], model: nn.Module | None) -> Verdict:
    if not feeds:
        return Verdict(
            False, "no images ever reached the network, so their size is untested", tested=False
        )
    shown = []
    for fed in feeds:
        if fed.size is None:
            return Verdict(
                False, f"{fed.phase} images reached conv1 as {fed.describe()}: {_why(fed)}"
            )
        ok, error = accepts_size(model, fed.size)
        if not ok:
            return Verdict(
                False,
                f"{fed.phase} images are {fed.size}x{fed.size}; for a batch of them {error}",
            )
        shown.append(f"{fed.phase} {fed.size}x{fed.size}")
    return Verdict(
        True, f"the network classifies batches of the images it is fed ({', '.join(shown)})"
    )


# --- bug 3: label encoding -------------------------------------------------------------------


@cache
def _training_labels() -> torch.Tensor:
    return make_data()[1].argmax(dim=1)


def labels_verdict(record: ProbeRecord, backward_ran: bool, namespace: dict[str, Any]) -> Verdict:
    if record.losses:
        return _loss_target_verdict(record)
    name = _label_tensor_name(namespace)
    where = "the loss ran outside torch's loss functions" if backward_ran else "the loss never ran"
    if name:
        return Verdict(True, f"{where}, but {name!r} holds the training labels as class indices")
    return Verdict(
        False,
        f"{where}, and no tensor in the namespace holds the training labels as class indices"
        + _describe_tensor(namespace, "y_train"),
    )


def _describe_tensor(namespace: dict[str, Any], name: str) -> str:
    value = namespace.get(name)
    if not isinstance(value, torch.Tensor):
        return ""
    return f" ({name} has shape {_dims(value.shape)}, {value.dtype})"


def _loss_target_verdict(record: ProbeRecord) -> Verdict:
    first = record.losses[0]
    shapes = f"logits {_dims(first.input_shape)}, target {_dims(first.target_shape)}"
    if not first.takes_class_indices:
        return Verdict(
            False,
            f"training used {first.function} ({shapes}), which sidesteps the one-hot labels "
            "instead of fixing them; CrossEntropyLoss with class indices is the fix",
        )
    kind = first.target_kind
    if kind == "indices" and len(record.target_classes) > 1:
        return Verdict(True, f"the loss got class indices ({shapes}, {first.target_dtype})")
    if kind == "indices":
        return Verdict(False, f"the loss only ever saw class {sorted(record.target_classes)}")
    if kind == "probabilities":
        return Verdict(
            True,
            f"the loss got float one-hot rows ({shapes}), which cross-entropy reads as class "
            "probabilities: the same loss as class indices",
        )
    failure = f"; it raised {first.error}" if first.error else ""
    if kind == "onehot_int":
        detail = f"the loss got integer one-hot rows ({shapes}, {first.target_dtype}){failure}"
    else:
        detail = f"the loss got a target it cannot use ({shapes}){failure}"
    return Verdict(False, detail + "; CrossEntropyLoss wants class indices: argmax(dim=1)")


def _label_tensor_name(namespace: dict[str, Any]) -> str:
    """A namespace tensor holding the training labels as indices (or float one-hot rows)."""
    for name, value in namespace.items():
        if isinstance(value, torch.Tensor) and not name.startswith("_") and _holds_labels(value):
            return name
    return ""


def _holds_labels(value: torch.Tensor) -> bool:
    labels = _training_labels()
    if value.shape == labels.shape and not value.is_floating_point():
        return torch.equal(value.long(), labels)
    if value.shape == (*labels.shape, NUM_CLASSES) and value.is_floating_point():
        return torch.equal(value.argmax(dim=1), labels) and bool((value.sum(dim=1) == 1).all())
    return False


def _dims(shape: Shape) -> str:
    return str(tuple(shape))


# --- bug 4: batch dimension ------------------------------------------------------------------


class BatchOnly(nn.Module):
    """A stand-in classifier that, like a CNN with a flatten, only accepts batches: of
    the images ``evaluate`` was given, or of any 3xSxS image (it may convert them)."""

    def __init__(self, image: Shape) -> None:
        super().__init__()
        self.image = tuple(image)
        self.batched = 0
        self.unbatched: list[Shape] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = tuple(x.shape[1:])
        if x.dim() != 4 or (image != self.image and image_layout(image) == "other"):
            self.unbatched.append(tuple(x.shape))
            raise RuntimeError(f"expected a batch of images, got shape {tuple(x.shape)}")
        self.batched += 1
        return torch.zeros(x.shape[0], NUM_CLASSES)


def batch_verdict(
    val_calls: list[ModelCall],
    namespace: dict[str, Any],
    model: nn.Module | None,
    size: int | None,
) -> Verdict:
    if val_calls:
        return _validation_calls_verdict(val_calls)
    probed = probe_evaluate(namespace)
    if probed is not None:
        return probed
    if size is not None and accepts_single_image(model, size):
        return Verdict(
            True, "validation never ran, but the model turns a single image into a batch"
        )
    return Verdict(
        False,
        "validation never ran the model, and no evaluate() function was left to try",
        tested=False,
    )


def _validation_calls_verdict(calls: list[ModelCall]) -> Verdict:
    for call in calls:
        if not _batched(call):
            shape = _dims(call.input_shape or ())
            misplaced = _misplaced_axis(call.input_shape or ())
            if misplaced is not None:
                return Verdict(
                    False,
                    f"validation called the model on one image of shape {shape}: the added "
                    f"axis of size 1 is axis {misplaced}, not axis 0, so it is no batch "
                    f"dimension: conv1 reads it as {call.input_shape[0]} images of "
                    f"{call.input_shape[1]} channels",
                )
            return Verdict(
                False,
                f"validation called the model on one image of shape {shape} with no batch "
                "dimension; Conv2d accepts that, but the fc layer then gets the wrong shape "
                "(add one: image.unsqueeze(0))",
            )
    first = _dims(calls[0].input_shape or ())
    times = "once" if len(calls) == 1 else f"{len(calls)} times"
    return Verdict(True, f"validation called the model {times}, first on {first}")


def _misplaced_axis(shape: Shape) -> int | None:
    """The axis of size 1 in a single 4-D image whose size-1 axis is not the first."""
    if len(shape) != 4 or shape[0] == 1:
        return None
    axes = [i for i, n in enumerate(shape) if n == 1]
    squeezed = [n for n in shape if n != 1]
    return axes[0] if len(axes) == 1 and len(squeezed) == 3 else None


def _batched(call: ModelCall) -> bool:
    if call.output_shape is not None and len(call.output_shape) == 2:
        return True
    shape = call.input_shape or ()
    return len(shape) == 4 and image_layout(shape[1:]) != "other"


def probe_evaluate(namespace: dict[str, Any]) -> Verdict | None:
    """Call the learner's ``evaluate`` with a batch-only stand-in model and 8 validation images."""
    evaluate = namespace.get("evaluate")
    if not callable(evaluate):
        return None
    images, labels = namespace.get("X_val"), namespace.get("y_val")
    if not (isinstance(images, torch.Tensor) and images.dim() == 4):
        images = make_samples(8, HELD_OUT_SEED)[0].permute(0, 3, 1, 2)
    if not (isinstance(labels, torch.Tensor) and labels.dim() >= 1 and len(labels) >= 8):
        labels = make_samples(8, HELD_OUT_SEED)[1]
    stand_in = BatchOnly(images.shape[1:])
    with quietly():
        try:
            evaluate(stand_in, images[:8], labels[:8])
        except (Exception, SystemExit) as error:
            failure = error_text(error)
        else:
            failure = ""
    if stand_in.batched and not stand_in.unbatched and not failure:
        return Verdict(
            True, "validation never ran, but evaluate() gives each image a batch dimension"
        )
    if stand_in.unbatched:
        failure = (
            f"it handed the model one image of shape {_dims(stand_in.unbatched[0])} with no "
            "batch dimension"
        )
    return Verdict(False, f"validation never ran; tried on 8 images, evaluate() failed: {failure}")


# --- the trained model on the grader's own images ------------------------------------------


@dataclass(frozen=True)
class HeldOut:
    evaluation: Evaluation
    view: str


def held_out_views(
    images: torch.Tensor, layout: str, size: int, scrambled: bool = False
) -> list[tuple[str, torch.Tensor]]:
    """The grader's images ``(N, 32, 32, 3)`` in the learner's layout and size, one per
    plausible resize; ``scrambled``: converted the way the learner did, by reshaping HWC
    data to CHW instead of moving the channel axis."""
    chw = (
        images.reshape(images.shape[0], *images.shape[1:][::-1])
        if scrambled
        else images.permute(0, 3, 1, 2)
    )
    views: list[tuple[str, torch.Tensor]] = []
    if size == IMAGE_SIZE:
        views.append(("as generated", chw))
    else:
        for mode in RESIZE_MODES:
            corners = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
            views.append((mode, F.interpolate(chw, size=(size, size), mode=mode, **corners)))
        if size < IMAGE_SIZE:
            offset = (IMAGE_SIZE - size) // 2
            views.append(("centre crop", chw[..., offset : offset + size, offset : offset + size]))
    if layout == "HWC":
        views = [(name, view.permute(0, 2, 3, 1)) for name, view in views]
    return views


def evaluate_held_out(
    model: nn.Module | None,
    input_shape: Shape | None,
    images: torch.Tensor,
    labels: torch.Tensor,
    scrambled: bool = False,
) -> HeldOut | None:
    """Accuracy of the trained model on the grader's images (exactly as generated,
    ``(N, 32, 32, 3)``), in the format it was fed.

    When the learner resized, the resize method that suits the model best is
    picked on the first 250 images, then the model is measured on all of them.
    """
    if model is None or input_shape is None or len(input_shape) != 4:
        return None
    layout = image_layout(input_shape[1:])
    size = {"CHW": input_shape[2], "HWC": input_shape[1]}.get(layout)
    if size is None:
        return None
    views = held_out_views(images, layout, size, scrambled)
    if len(views) > 1:
        scores = [
            _evaluate(model, view[:SELECTION_SIZE], labels[:SELECTION_SIZE]) for _, view in views
        ]
        best = max(range(len(views)), key=lambda i: scores[i].accuracy or -1.0)
        views = [views[best]]
    name, view = views[0]
    evaluation = _evaluate(model, view, labels)
    how = ", reshaped from HWC as in training" if scrambled else ""
    view = f"{layout} {size}x{size}, {name}{how}"
    return HeldOut(evaluation, view) if evaluation.ok else None


def _evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Evaluation:
    with quietly(model):
        return evaluate_classifier(model, images, labels)


# --- data that must stay unseen ----------------------------------------------------------------

HELD_OUT_NAME = HELD_OUT_DATA
#: Rows of each set watched: enough to catch training on the set, little memory.
WATCHED_ROWS = 128
#: The forms a learner's pipeline is likely to give the images, as the exact
#: operations (so the bytes match): as loaded, permuted, permuted and resized.
WATCHED_FORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "": lambda images: images,
    " (CHW)": lambda images: images.permute(0, 3, 1, 2),
    " (CHW, 28x28 bilinear)": lambda images: F.interpolate(
        images.permute(0, 3, 1, 2), size=(28, 28), mode="bilinear", align_corners=False
    ),
    " (CHW, 28x28 nearest)": lambda images: F.interpolate(
        images.permute(0, 3, 1, 2), size=(28, 28), mode="nearest"
    ),
}


def unseen_images(held_out: torch.Tensor) -> dict[str, torch.Tensor]:
    """Validation and held-out images in each watched form, keyed by a readable name."""
    first = f"'s first {WATCHED_ROWS} images"
    sets = {
        "the validation split" + first: make_data()[2][:WATCHED_ROWS],
        HELD_OUT_NAME + first: held_out[:WATCHED_ROWS],
    }
    return {
        name + suffix: form(images)
        for name, images in sets.items()
        for suffix, form in WATCHED_FORMS.items()
    }


__all__ = [
    "Feed",
    "HeldOut",
    "Verdict",
    "batch_verdict",
    "evaluate_held_out",
    "feed",
    "labels_verdict",
    "layout_verdict",
    "orientation",
    "size_verdict",
]
