"""The architectures `benchmarks/coverage.py` drives through edgekit: built from code with seeded random weights
(nothing is downloaded), small enough that the whole matrix runs on two cores — images 64×64 (or the smallest
size an application allows), sequences of 16 steps, vocabularies of 160 tokens.

Each builder returns the saved model's path: torch models as a ``.pt2`` (``torch.export.save``), Keras models
as a ``.keras``. ``transformers`` models are wrapped to return a plain logits tensor, as a user exporting one
would do, since ``torch.export`` cannot return their ``ModelOutput`` dataclasses as a flat graph output.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = 0
IMAGE = 64  # pixels a side: every Keras application below accepts it (their minimum is 32)
SEQ = 16  # tokens or time steps
VOCAB = 160  # token ids in [0, VOCAB)
FEATURES = 8  # per time step of the recurrent models
CLASSES = 10


@dataclass(frozen=True)
class ModelSpec:
    name: str  # what --models takes and the table's row shows
    framework: str  # "torch" or "keras": the source format's family, and which builder process makes it
    summary: str
    build: Callable[[Path], Path]  # writes the model under the directory given, returns its path


# -- torch modules written by hand --------------------------------------------------------------------------


def _save_torch(module: Any, example: tuple, path: Path) -> Path:
    import torch

    program = torch.export.export(module.eval(), example)
    torch.export.save(program, str(path))
    return path


def _torch_dwse(directory: Path) -> Path:
    """MobileNet-style blocks: depthwise-separable convolutions with a squeeze-and-excitation gate."""
    import torch
    from torch import nn

    class SqueezeExcite(nn.Module):
        def __init__(self, channels: int) -> None:
            super().__init__()
            self.reduce, self.expand = nn.Conv2d(channels, channels // 4, 1), nn.Conv2d(channels // 4, channels, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            gate = torch.sigmoid(self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
            return x * gate

    def block(cin: int, cout: int, stride: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin), nn.BatchNorm2d(cin), nn.ReLU6(),
                             SqueezeExcite(cin), nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.Hardswish())

    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), block(16, 32, 2),
                          block(32, 64, 2), block(64, 64, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(64, CLASSES))
    return _save_torch(model, (torch.randn(1, 3, IMAGE, IMAGE),), directory / "torch-dwse.pt2")


def _torch_recurrent(kind: str) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        import torch
        from torch import nn

        class Recurrent(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.rnn = getattr(nn, kind)(FEATURES, 32, num_layers=2, batch_first=True)
                self.head = nn.Linear(32, CLASSES)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                sequence, _ = self.rnn(x)
                return self.head(sequence[:, -1])

        torch.manual_seed(SEED)
        return _save_torch(Recurrent(), (torch.randn(1, SEQ, FEATURES),), directory / f"torch-{kind.lower()}.pt2")

    return build


def _torch_attention(directory: Path) -> Path:
    """A pre-norm transformer block: multi-head self-attention, LayerNorm, a GELU MLP."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, width: int = 32) -> None:
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.attention = nn.MultiheadAttention(width, 4, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
            self.head = nn.Linear(width, CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            normed = self.norm1(x)
            x = x + self.attention(normed, normed, normed, need_weights=False)[0]
            x = x + self.mlp(self.norm2(x))
            return self.head(x.mean(1))

    torch.manual_seed(SEED)
    return _save_torch(Block(), (torch.randn(1, SEQ, 32),), directory / "torch-attention.pt2")


def _torch_two_io(directory: Path) -> Path:
    """Two inputs (an image and a feature vector), two outputs (class logits and a regression)."""
    import torch
    from torch import nn

    class TwoInTwoOut(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.dense = nn.Sequential(nn.Linear(FEATURES, 8), nn.Tanh())
            self.classes, self.value = nn.Linear(16, CLASSES), nn.Linear(16, 1)

        def forward(self, image: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            joint = torch.cat([self.conv(image), self.dense(features)], 1)
            return self.classes(joint), self.value(joint)

    torch.manual_seed(SEED)
    example = (torch.randn(1, 3, 32, 32), torch.randn(1, FEATURES))
    return _save_torch(TwoInTwoOut(), example, directory / "torch-two-io.pt2")


# -- transformers models from small configs ------------------------------------------------------------------


def _logits_only(model: Any) -> Any:
    """``model(...)`` returning its ``logits`` tensor alone: what torch.export needs and a user would write."""
    from torch import nn

    class Logits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(*inputs).logits

    return Logits()


def _hf_text(kind: str, *, mask: bool) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        import torch
        import transformers as hf

        torch.manual_seed(SEED)
        if kind == "bert":
            config = hf.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64, max_position_embeddings=64, num_labels=CLASSES)
            model = hf.BertForSequenceClassification(config)
        elif kind == "distilbert":
            config = hf.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                         max_position_embeddings=64, num_labels=CLASSES)
            model = hf.DistilBertForSequenceClassification(config)
        else:
            config = hf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                   bos_token_id=0, eos_token_id=0)
            model = hf.GPT2LMHeadModel(config)
        ids = torch.randint(0, VOCAB, (1, SEQ))
        example = (ids, torch.ones(1, SEQ, dtype=torch.int64)) if mask else (ids,)
        name = f"hf-{kind}{'-mask' if mask else ''}"
        return _save_torch(_logits_only(model), example, directory / f"{name}.pt2")

    return build


def _hf_vision(kind: str) -> Callable[[Path], Path]:
    def build(directory: Path) -> Path:
        import torch
        import transformers as hf

        torch.manual_seed(SEED)
        size = IMAGE
        if kind == "vit":
            size = 32
            model = hf.ViTForImageClassification(hf.ViTConfig(
                image_size=size, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=64, num_labels=CLASSES))
        elif kind == "convnext":
            model = hf.ConvNextForImageClassification(hf.ConvNextConfig(
                num_stages=2, hidden_sizes=[16, 32], depths=[1, 1], num_labels=CLASSES))
        elif kind == "resnet":
            model = hf.ResNetForImageClassification(hf.ResNetConfig(
                embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic", num_labels=CLASSES))
        else:
            model = hf.MobileNetV2ForImageClassification(hf.MobileNetV2Config(
                image_size=size, depth_multiplier=0.35, num_labels=CLASSES))
        return _save_torch(_logits_only(model), (torch.randn(1, 3, size, size),), directory / f"hf-{kind}.pt2")

    return build


# -- Keras ---------------------------------------------------------------------------------------------------


def _keras_app(attribute: str) -> Callable[[Path], Path]:
    """A ``keras.applications`` model with ``weights=None``: its default head (softmax over CLASSES classes),
    its own preprocessing layers where it has them (EfficientNet, ConvNeXt), as a user's model would be."""

    def build(directory: Path) -> Path:
        import keras

        keras.utils.set_random_seed(SEED)
        model = getattr(keras.applications, attribute)(weights=None, input_shape=(IMAGE, IMAGE, 3), classes=CLASSES)
        path = directory / f"keras-{attribute.lower()}.keras"
        model.save(path)
        return path

    return build


def _keras_recurrent(kind: str) -> Callable[[Path], Path]:
    """Stacked recurrent layers; the LSTM model has two outputs (class logits and a regression)."""

    def build(directory: Path) -> Path:
        import keras

        keras.utils.set_random_seed(SEED)
        layer = getattr(keras.layers, kind)
        sequence = keras.Input((SEQ, FEATURES), name="sequence")
        hidden = layer(16)(layer(32, return_sequences=True)(sequence))
        if kind == "LSTM":
            outputs = [keras.layers.Dense(CLASSES, name="classes")(hidden), keras.layers.Dense(1, name="value")(hidden)]
        else:
            outputs = keras.layers.Dense(CLASSES, name="classes")(hidden)
        path = directory / f"keras-{kind.lower()}.keras"
        keras.Model(sequence, outputs).save(path)
        return path

    return build


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("torch-dwse", "torch", "depthwise-separable conv + squeeze-excite, 64×64", _torch_dwse),
    ModelSpec("torch-lstm", "torch", "2-layer nn.LSTM, 16 steps", _torch_recurrent("LSTM")),
    ModelSpec("torch-gru", "torch", "2-layer nn.GRU, 16 steps", _torch_recurrent("GRU")),
    ModelSpec("torch-attention", "torch", "MultiheadAttention + LayerNorm + GELU MLP", _torch_attention),
    ModelSpec("torch-two-io", "torch", "two inputs (image, vector), two outputs", _torch_two_io),
    ModelSpec("hf-bert", "torch", "transformers BERT, input_ids [1,16]", _hf_text("bert", mask=False)),
    ModelSpec("hf-bert-mask", "torch", "transformers BERT, input_ids + attention_mask", _hf_text("bert", mask=True)),
    ModelSpec("hf-distilbert", "torch", "transformers DistilBERT, input_ids", _hf_text("distilbert", mask=False)),
    ModelSpec("hf-distilbert-mask", "torch", "transformers DistilBERT, input_ids + attention_mask",
              _hf_text("distilbert", mask=True)),
    ModelSpec("hf-gpt2", "torch", "transformers GPT-2 LM logits", _hf_text("gpt2", mask=False)),
    ModelSpec("hf-vit", "torch", "transformers ViT, 32×32, patch 8", _hf_vision("vit")),
    ModelSpec("hf-convnext", "torch", "transformers ConvNeXt, 2 stages", _hf_vision("convnext")),
    ModelSpec("hf-resnet", "torch", "transformers ResNet, 2 basic stages", _hf_vision("resnet")),
    ModelSpec("hf-mobilenetv2", "torch", "transformers MobileNetV2, depth 0.35", _hf_vision("mobilenetv2")),
    ModelSpec("keras-mobilenetv2", "keras", "keras.applications MobileNetV2", _keras_app("MobileNetV2")),
    ModelSpec("keras-mobilenetv3small", "keras", "keras.applications MobileNetV3Small",
              _keras_app("MobileNetV3Small")),
    ModelSpec("keras-efficientnetb0", "keras", "keras.applications EfficientNetB0", _keras_app("EfficientNetB0")),
    ModelSpec("keras-efficientnetv2b0", "keras", "keras.applications EfficientNetV2B0",
              _keras_app("EfficientNetV2B0")),
    ModelSpec("keras-resnet50", "keras", "keras.applications ResNet50", _keras_app("ResNet50")),
    ModelSpec("keras-densenet121", "keras", "keras.applications DenseNet121", _keras_app("DenseNet121")),
    ModelSpec("keras-nasnetmobile", "keras", "keras.applications NASNetMobile", _keras_app("NASNetMobile")),
    ModelSpec("keras-convnexttiny", "keras", "keras.applications ConvNeXtTiny", _keras_app("ConvNeXtTiny")),
    ModelSpec("keras-lstm", "keras", "stacked keras LSTM, two outputs", _keras_recurrent("LSTM")),
    ModelSpec("keras-gru", "keras", "stacked keras GRU", _keras_recurrent("GRU")),
)


def by_name() -> dict[str, ModelSpec]:
    return {spec.name: spec for spec in MODELS}
