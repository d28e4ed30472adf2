"""The paper's models (ResNet50, VGG19), smaller ones for CPU runs, and where their weights come from.

``weights``: ``imagenet`` (torchvision's own weights, downloaded on first use by a user with
internet), a path to a local weights file (a state dict of the torchvision model with its 1000-class
head, e.g. downloaded elsewhere), or ``none`` (random initialisation). Offline, ``imagenet`` fails
with a message that says how to supply a local file; there is no silent fallback.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from csxa_data.errors import CsxaError

TORCHVISION_MODELS = ("resnet18", "resnet34", "resnet50", "vgg11", "vgg16", "vgg19")
MODELS = TORCHVISION_MODELS + ("smallcnn", "resnetsmall", "vggsmall")
# the demo's stand-ins, trained from scratch on CPUs: no pretrained weights exist for them
SMALL_MODELS = {"smallcnn": "SmallCNN", "resnetsmall": "ResNetSmall", "vggsmall": "VGGSmall"}


class SmallCNN(nn.Module):
    """A four-block convolutional net for tests and quick CPU runs (about 100k parameters)."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        layers, channels = [], 3
        for width in (16, 32, 64, 96):
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class ResNetSmall(nn.Module):
    """ResNet's residual basic blocks (torchvision's own ``BasicBlock``) in four stages at CPU-demo
    widths 16-96, each stage followed by a 2 x 2 max-pool as in ``smallcnn`` (measured on the demo's
    32 px films, strided blocks without the pooling learned far less: benchmarks/bench_demo.py): the
    ResNet family for CPU demos, about 0.2M parameters. Stages are ``layer1`` .. ``layer4`` as in
    torchvision, so Grad-CAM reads it as it reads a ResNet."""

    def __init__(self, num_classes: int = 2, widths: tuple[int, ...] = (16, 32, 64, 96)):
        from torchvision.models.resnet import BasicBlock

        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        channels = widths[0]
        for index, width in enumerate(widths, start=1):
            downsample = None
            if channels != width:
                downsample = nn.Sequential(nn.Conv2d(channels, width, 1, bias=False), nn.BatchNorm2d(width))
            setattr(self, f"layer{index}", nn.Sequential(BasicBlock(channels, width, 1, downsample), nn.MaxPool2d(2)))
            channels = width
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 16:  # four 2 x 2 max-pools
            raise CsxaError(f"resnetsmall needs images of at least 16 px (four halvings), not {x.shape[-1]} px")
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        return self.fc(torch.flatten(self.pool(x), 1))


class VGGSmall(nn.Module):
    """VGG11's shape (eight 3x3 conv layers in five max-pooled blocks, then a two-layer classifier)
    at a quarter of its widths: the VGG family for CPU demos, about 0.6M parameters."""

    def __init__(self, num_classes: int = 2):
        super().__init__()
        layers, channels = [], 3
        for item in (16, "M", 32, "M", 64, 64, "M", 128, 128, "M", 128, 128, "M"):
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item), nn.ReLU(inplace=True)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(
            nn.Linear(channels * 4, 256), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(256, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def _replace_head(model: nn.Module, num_classes: int) -> nn.Module:
    if hasattr(model, "fc"):
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    else:  # VGG: the last layer of the classifier
        last = model.classifier[-1]
        model.classifier[-1] = nn.Linear(last.in_features, num_classes)
    return model


def _imagenet_state(name: str) -> dict:
    import urllib.error

    from torchvision.models import get_model_weights

    weights = get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except (urllib.error.URLError, OSError, RuntimeError) as exc:
        url = weights.url
        raise CsxaError(
            f"cannot download the ImageNet weights of {name} ({type(exc).__name__}: {exc}). "
            f"Offline? On a machine with internet, download {url} and set the model's weights "
            f"to that file's path (params.yaml experiments.<name>.weights, or --weights PATH); "
            f"or use weights 'none'"
        ) from None


def _local_state(name: str, path: Path) -> dict:
    if not path.is_file():
        raise CsxaError(
            f"weights file not found (model {name}); give a torchvision state dict, 'imagenet' or 'none'", path=path
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a bad file
        raise CsxaError(
            f"cannot load as a weights file ({type(exc).__name__}: {str(exc).splitlines()[0]})", path=path
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a csxa checkpoint
    if not isinstance(state, dict):
        raise CsxaError("does not hold a state dict", path=path)
    return state


def build_model(name: str, weights: str = "none", num_classes: int = 2) -> nn.Module:
    """A model with a ``num_classes`` head, its backbone initialised from ``weights``."""
    if name not in MODELS:
        raise CsxaError(f"unknown model {name!r}; choose one of {list(MODELS)}")
    if name in SMALL_MODELS:
        if weights not in ("none", None):
            raise CsxaError(f"{name} has no pretrained weights; use weights 'none'")
        return globals()[SMALL_MODELS[name]](num_classes)
    from torchvision.models import get_model

    model = get_model(name, weights=None)
    if weights and weights != "none":
        state = _imagenet_state(name) if weights == "imagenet" else _local_state(name, Path(weights))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            try:  # perhaps a file saved with a 2-class head already (our own checkpoint)
                _replace_head(model, num_classes).load_state_dict(state, strict=True)
                return model
            except RuntimeError:
                raise CsxaError(f"weights do not fit {name} ({first})", path=weights) from None
    return _replace_head(model, num_classes)
