"""A space of microcontroller-sized classifiers: MLPs and LeNet-like CNNs.

Its two landmarks are the classic compression baselines (LeCun et al., 1998;
Han et al., "Deep Compression", 2016, https://arxiv.org/abs/1510.00149):
LeNet-300-100 (266,610 parameters on 28x28x1, 10 classes) and the Caffe LeNet-5
(431,080), exported as :data:`LENET_300_100` and :data:`LENET5`; the default
ranges contain both.

An architecture is one of::

    {"kind": "mlp", "hidden": [300, 100]}
    {"kind": "cnn", "conv": [20, 50], "kernel": 5, "fc": [500]}

An MLP flattens the image, then each hidden width is Linear -> ReLU, then a
Linear classifier. A CNN is, per entry of ``conv``, Conv(kernel) -> ReLU ->
MaxPool(2); then flatten, per entry of ``fc`` Linear -> ReLU, then the classifier.

Padding adapts to the input so that any image of 4 px or more works: the convs are
"valid" (unpadded, as in LeNet-5) when the image is large enough for valid convs to
leave a map of at least 2x2 after the last pool (28 px with kernel 5: 28 -> 24 -> 12
-> 8 -> 4, LeNet-5 exactly); otherwise every conv is "same"-padded (8 px digits with
kernel 5: 8 -> 8 -> 4 -> 4 -> 2).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from search_spaces._configs import _KINDS, LENET5, LENET_300_100, TinySpaceConfig
from search_spaces._registry import Arch, InputSpec, SearchSpace, Suggest, register_search_space

__all__ = ["LENET5", "LENET_300_100", "TinySearchSpace", "TinySpaceConfig", "cnn_padding"]

_MIN_FINAL_SIZE = 2
_REFERENCE_SPEC = InputSpec(in_chans=1, image_size=28, num_classes=10)


class TinySearchSpace(SearchSpace):
    """MLPs and two-conv LeNet-like CNNs, both containing the LeNet baselines."""

    # No BatchNorm: LeNet-5 reaches 0.97 test on mnist5k at 0.005-0.01 and diverges at 0.08.
    default_lr = 0.01

    def __init__(self, cfg: TinySpaceConfig) -> None:
        self.cfg = cfg

    def sample(self, suggest: Suggest) -> Arch:
        cfg = self.cfg
        kind = str(suggest.suggest_categorical("kind", list(cfg.kinds)))
        if kind == "mlp":
            n = int(suggest.suggest_int("mlp_layers", cfg.mlp_layers_min, cfg.mlp_layers_max))
            hidden = [
                int(suggest.suggest_categorical(f"mlp_width_l{i}", list(cfg.mlp_widths)))
                for i in range(1, n + 1)
            ]
            return {"kind": "mlp", "hidden": hidden}
        conv = [
            int(suggest.suggest_categorical("cnn_conv1", list(cfg.cnn_conv1_channels))),
            int(suggest.suggest_categorical("cnn_conv2", list(cfg.cnn_conv2_channels))),
        ]
        kernel = int(suggest.suggest_categorical("cnn_kernel", list(cfg.cnn_kernels)))
        n_fc = int(
            suggest.suggest_int("cnn_fc_layers", cfg.cnn_fc_layers_min, cfg.cnn_fc_layers_max)
        )
        fc = [
            int(suggest.suggest_categorical(f"cnn_fc_width_l{i}", list(cfg.cnn_fc_widths)))
            for i in range(1, n_fc + 1)
        ]
        return {"kind": "cnn", "conv": conv, "kernel": kernel, "fc": fc}

    def build(self, arch: Arch, spec: InputSpec) -> nn.Module:
        kind = arch.get("kind")
        if kind == "mlp":
            return _build_mlp(list(arch["hidden"]), spec)
        if kind == "cnn":
            return _build_cnn(list(arch["conv"]), int(arch["kernel"]), list(arch["fc"]), spec)
        raise ValueError(f"tiny arch kind={kind!r}: must be one of {list(_KINDS)}")

    def extremes(self) -> tuple[Arch, Arch]:
        """The fewest- and most-parameter corners of the space.

        Which family is smaller depends on the input, so the corners of each kind
        are ranked by parameter count on a 28x28x1, 10-class reference input.
        """
        corners = [*self._corners(min), *self._corners(max)]
        ranked = sorted(corners, key=lambda a: _num_params(self.build(a, _REFERENCE_SPEC)))
        return ranked[0], ranked[-1]

    def small_corners(self) -> list[Arch]:
        # On 28x28 MNIST the smallest MLP (784 -> 10 matmuls) runs faster than the
        # smallest CNN, which has fewer parameters; each family's corner counts.
        return self._corners(min)

    def _corners(self, pick: Callable[[Sequence[Any]], Any]) -> list[Arch]:
        """Each enabled family's corner, every choice taken by ``pick`` (min or max)."""
        cfg = self.cfg
        corners: list[Arch] = []
        if "mlp" in cfg.kinds:
            n = pick([cfg.mlp_layers_min, cfg.mlp_layers_max])
            corners.append({"kind": "mlp", "hidden": [pick(cfg.mlp_widths)] * n})
        if "cnn" in cfg.kinds:
            n_fc = pick([cfg.cnn_fc_layers_min, cfg.cnn_fc_layers_max])
            corners.append(
                {
                    "kind": "cnn",
                    "conv": [pick(cfg.cnn_conv1_channels), pick(cfg.cnn_conv2_channels)],
                    "kernel": pick(cfg.cnn_kernels),
                    "fc": [pick(cfg.cnn_fc_widths)] * n_fc,
                }
            )
        return corners


@register_search_space("tiny", config=TinySpaceConfig)
def _make_tiny(cfg: TinySpaceConfig) -> SearchSpace:
    return TinySearchSpace(cfg)


def cnn_padding(image_size: int, kernel: int, num_convs: int) -> int:
    """Padding of every conv: 0 ("valid") if the image is large enough, else ``kernel // 2``.

    Args:
        image_size: side of the (square) input, in pixels.
        kernel: odd conv kernel size.
        num_convs: conv -> pool stages.

    Returns:
        The padding each conv uses.
    """
    return 0 if _final_size(image_size, kernel, num_convs, 0) >= _MIN_FINAL_SIZE else kernel // 2


def _build_mlp(hidden: Sequence[int], spec: InputSpec) -> nn.Module:
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    width = spec.in_chans * spec.image_size**2
    for i, h in enumerate(hidden, start=1):
        layers[f"fc{i}"] = nn.Linear(width, int(h))
        layers[f"relu{i}"] = nn.ReLU(inplace=True)
        width = int(h)
    layers["classifier"] = nn.Linear(width, spec.num_classes)
    return nn.Sequential(layers)


def _build_cnn(conv: Sequence[int], kernel: int, fc: Sequence[int], spec: InputSpec) -> nn.Module:
    if not conv:
        raise ValueError("tiny cnn arch has no conv layers: give one or more channel counts")
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"tiny cnn arch kernel={kernel}: must be odd and positive")
    padding = cnn_padding(spec.image_size, kernel, len(conv))
    size = _final_size(spec.image_size, kernel, len(conv), padding)
    if size < 1:
        raise ValueError(
            f"image_size={spec.image_size} is too small for {len(conv)} conv/pool stages"
        )
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    chans = spec.in_chans
    for i, c in enumerate(conv, start=1):
        layers[f"conv{i}"] = nn.Conv2d(chans, int(c), kernel, padding=padding)
        layers[f"relu_conv{i}"] = nn.ReLU(inplace=True)
        layers[f"pool{i}"] = nn.MaxPool2d(2)
        chans = int(c)
    layers["flatten"] = nn.Flatten()
    width = chans * size * size
    for i, h in enumerate(fc, start=1):
        layers[f"fc{i}"] = nn.Linear(width, int(h))
        layers[f"relu_fc{i}"] = nn.ReLU(inplace=True)
        width = int(h)
    layers["classifier"] = nn.Linear(width, spec.num_classes)
    return nn.Sequential(layers)


def _final_size(image_size: int, kernel: int, num_convs: int, padding: int) -> int:
    size = image_size
    for _ in range(num_convs):
        size = (size + 2 * padding - kernel + 1) // 2
        if size < 1:
            return 0
    return size


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
