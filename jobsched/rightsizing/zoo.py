"""A zoo of training configurations for the estimator's benchmark and tests.

Every function here is a factory ``module:function`` in the estimator's sense: it returns
``(model, optimizer, (inputs, targets), loss_fn)`` with ``loss = loss_fn(model(inputs), targets)``.
:data:`CONFIGS` names concrete configurations (peaks of about 50 MB to 1.5 GB above the runtime
baseline) that ``benchmarks/bench_estimator.py`` measures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("adam", "adamw", "sgd", "sgd-momentum")


@dataclass(frozen=True)
class Config:
    name: str
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def make_optimizer(name: str, params: Any) -> Any:
    import torch

    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-3)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-2)
    if name == "sgd-momentum":
        return torch.optim.SGD(params, lr=1e-2, momentum=0.9)
    raise ValueError(f"optimizer: {name!r} is not one of {', '.join(OPTIMIZERS)}")


def mlp(width: int = 1024, depth: int = 4, batch: int = 128, in_features: int = 784, classes: int = 10,
        optimizer: str = "adam") -> tuple[Any, Any, Any, Any]:
    import torch
    from torch import nn

    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Linear(in_features if i == 0 else width, width), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(width, classes))
    batch_ = (torch.randn(batch, in_features), torch.randint(0, classes, (batch,)))
    return model, make_optimizer(optimizer, model.parameters()), batch_, nn.functional.cross_entropy


def cnn(channels: int = 32, blocks: int = 3, image: int = 32, batch: int = 64, classes: int = 10,
        batchnorm: bool = True, optimizer: str = "adam") -> tuple[Any, Any, Any, Any]:
    """VGG-style: per block two 3x3 convolutions (+BatchNorm), ReLU, 2x2 max-pool; channels double."""
    import torch
    from torch import nn

    layers: list[nn.Module] = []
    c_in, c, size = 3, channels, image
    for _ in range(blocks):
        for _ in range(2):
            layers += [nn.Conv2d(c_in, c, 3, padding=1), *([nn.BatchNorm2d(c)] if batchnorm else []), nn.ReLU()]
            c_in = c
        layers.append(nn.MaxPool2d(2))
        c, size = c * 2, size // 2
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c_in * size * size, classes))
    batch_ = (torch.randn(batch, 3, image, image), torch.randint(0, classes, (batch,)))
    return model, make_optimizer(optimizer, model.parameters()), batch_, nn.functional.cross_entropy


def _rnn_model(cell: str, vocab: int, hidden: int, layers: int) -> Any:
    from torch import nn

    class RNNClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
            self.rnn = rnn(hidden, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, vocab)

        def forward(self, x: Any) -> Any:
            out, _ = self.rnn(self.embed(x))
            return self.head(out).flatten(0, 1)  # next-token logits for every position

    return RNNClassifier()


def rnn(cell: str = "lstm", hidden: int = 256, layers: int = 2, seq: int = 64, batch: int = 32,
        vocab: int = 5000, optimizer: str = "adam") -> tuple[Any, Any, Any, Any]:
    """Recurrent language model (LSTM or GRU) over token ids."""
    import torch
    from torch import nn

    if cell not in ("lstm", "gru"):
        raise ValueError(f"cell: {cell!r} is not 'lstm' or 'gru'")
    model = _rnn_model(cell, vocab, hidden, layers)
    tokens = torch.randint(0, vocab, (batch, seq))
    batch_ = (tokens, torch.randint(0, vocab, (batch * seq,)))
    return model, make_optimizer(optimizer, model.parameters()), batch_, nn.functional.cross_entropy


def transformer(d_model: int = 256, heads: int = 4, layers: int = 4, seq: int = 128, batch: int = 16,
                vocab: int = 8000, optimizer: str = "adamw") -> tuple[Any, Any, Any, Any]:
    """Encoder-only transformer language model (nn.TransformerEncoder, pre-norm)."""
    import torch
    from torch import nn

    class LM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, d_model)
            self.pos = nn.Parameter(torch.zeros(seq, d_model))
            layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.1,
                                               batch_first=True, norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, vocab)

        def forward(self, x: Any) -> Any:
            return self.head(self.encoder(self.embed(x) + self.pos)).flatten(0, 1)

    model = LM()
    tokens = torch.randint(0, vocab, (batch, seq))
    batch_ = (tokens, torch.randint(0, vocab, (batch * seq,)))
    return model, make_optimizer(optimizer, model.parameters()), batch_, nn.functional.cross_entropy


def logreg(features: int = 100_000, classes: int = 100, batch: int = 512,
           optimizer: str = "sgd") -> tuple[Any, Any, Any, Any]:
    """Multinomial logistic regression on wide dense features."""
    import torch
    from torch import nn

    model = nn.Linear(features, classes)
    batch_ = (torch.randn(batch, features), torch.randint(0, classes, (batch,)))
    return model, make_optimizer(optimizer, model.parameters()), batch_, nn.functional.cross_entropy


def resnet(image: int = 64, batch: int = 32, classes: int = 10, width: int = 64,
           optimizer: str = "sgd-momentum") -> tuple[Any, Any, Any, Any]:
    """ResNet-18: torchvision's ``resnet18`` when torchvision is installed, else the same layers
    (7x7 stem, max-pool, four stages of two BasicBlocks with 1x1 projection shortcuts)."""
    import torch
    from torch import nn

    try:
        from torchvision.models import resnet18

        model: nn.Module = resnet18(num_classes=classes)
    except ImportError:
        def conv_bn(c_in: int, c_out: int, k: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out)]

        class Basic(nn.Module):
            def __init__(self, c_in: int, c_out: int, stride: int) -> None:
                super().__init__()
                self.body = nn.Sequential(*conv_bn(c_in, c_out, 3, stride), nn.ReLU(inplace=True),
                                          *conv_bn(c_out, c_out, 3, 1))
                self.short = (nn.Sequential(*conv_bn(c_in, c_out, 1, stride)) if stride != 1 or c_in != c_out
                              else nn.Identity())

            def forward(self, x: Any) -> Any:
                return torch.relu(self.body(x) + self.short(x))

        stages: list[nn.Module] = []
        c = width
        for i, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stages += [Basic(c, c_out, 1 if i == 0 else 2), Basic(c_out, c_out, 1)]
            c = c_out
        model = nn.Sequential(*conv_bn(3, width, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1), *stages,
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))
    batch_ = (torch.randn(batch, 3, image, image), torch.randint(0, classes, (batch,)))
    return model, make_optimizer(optimizer, model.parameters()), batch_, nn.functional.cross_entropy


_Z = "jobsched.rightsizing.zoo:"
CONFIGS: list[Config] = [
    Config("mlp-small-adam", _Z + "mlp", {"width": 1024, "depth": 4, "batch": 128}),
    Config("mlp-wide-sgd", _Z + "mlp", {"width": 4096, "depth": 3, "batch": 256, "optimizer": "sgd"}),
    Config("mlp-wide-adam", _Z + "mlp", {"width": 3072, "depth": 4, "batch": 512}),
    Config("mlp-deep-sgdm-b2048", _Z + "mlp",
           {"width": 1024, "depth": 12, "batch": 2048, "optimizer": "sgd-momentum"}),
    Config("cnn-bn-adam-b64", _Z + "cnn", {"channels": 32, "blocks": 3, "image": 32, "batch": 64}),
    Config("cnn-bn-sgdm-b256", _Z + "cnn",
           {"channels": 32, "blocks": 3, "image": 32, "batch": 256, "optimizer": "sgd-momentum"}),
    Config("cnn-plain-adam-64px", _Z + "cnn",
           {"channels": 16, "blocks": 4, "image": 64, "batch": 32, "batchnorm": False}),
    Config("lstm-adam", _Z + "rnn", {"cell": "lstm", "hidden": 256, "layers": 2, "seq": 64, "batch": 32}),
    Config("lstm-wide-sgd", _Z + "rnn",
           {"cell": "lstm", "hidden": 512, "layers": 1, "seq": 32, "batch": 64, "optimizer": "sgd"}),
    Config("gru-adamw", _Z + "rnn",
           {"cell": "gru", "hidden": 384, "layers": 2, "seq": 48, "batch": 32, "optimizer": "adamw"}),
    Config("transformer-small-adamw", _Z + "transformer", {"d_model": 256, "layers": 4, "seq": 128, "batch": 16}),
    Config("transformer-wide-adam", _Z + "transformer",
           {"d_model": 512, "heads": 8, "layers": 4, "seq": 64, "batch": 8, "vocab": 32000,
            "optimizer": "adam"}),
    Config("transformer-long-sgd", _Z + "transformer",
           {"d_model": 128, "heads": 4, "layers": 2, "seq": 512, "batch": 8, "optimizer": "sgd"}),
    Config("logreg-sgd", _Z + "logreg", {"features": 200_000, "classes": 100, "batch": 512}),
]
