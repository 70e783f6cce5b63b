"""Models users bring, built in code with seeded random weights (nothing downloaded): integer inputs,
several inputs and outputs, transformers from small configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

VOCAB, SEQ = 50, 8


class TokensAndFeatures(torch.nn.Module):
    """Two inputs (int64 token ids, float features) → two outputs (class scores, a regression head)."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(VOCAB, 8)
        self.classes = torch.nn.Linear(8 + 4, 5)
        self.value = torch.nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.embedding(ids).mean(dim=1)
        return self.classes(torch.cat([pooled, features], dim=1)), self.value(features)


def tokens_and_features() -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    torch.manual_seed(0)
    return TokensAndFeatures().eval(), (torch.zeros(1, SEQ, dtype=torch.long), torch.zeros(1, 4))


def save_pt2(module: torch.nn.Module, args: tuple, path: Path) -> Path:
    torch.export.save(torch.export.export(module, args), str(path))
    return path


def tokens_and_features_npz(path: Path, samples: int = 24, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, ids=rng.integers(0, VOCAB, (samples, SEQ)).astype(np.int64),
             features=rng.standard_normal((samples, 4)).astype(np.float32),
             labels=rng.integers(0, 5, samples))
    return path


class _Logits(torch.nn.Module):
    """A transformers model called with keyword inputs, returning its logits tensor (torch.export needs a
    plain signature)."""

    def __init__(self, model: torch.nn.Module, with_mask: bool) -> None:
        super().__init__()
        self.model, self.with_mask = model, with_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.with_mask:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        return self.model(input_ids=input_ids).logits


def transformer(kind: str, *, with_mask: bool = True, seq: int = 16) -> tuple[torch.nn.Module, tuple, int]:
    """A small seeded BERT / DistilBERT classifier or GPT-2 LM → (module, example args, vocabulary size)."""
    import transformers

    torch.manual_seed(0)
    if kind == "bert":
        vocab = 120
        config = transformers.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, max_position_embeddings=32, num_labels=3)
        model = transformers.BertForSequenceClassification(config)
    elif kind == "distilbert":
        vocab = 150
        config = transformers.DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                               max_position_embeddings=32, num_labels=3)
        model = transformers.DistilBertForSequenceClassification(config)
    elif kind == "gpt2":
        vocab = 130
        config = transformers.GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=32,
                                         bos_token_id=0, eos_token_id=0)
        model = transformers.GPT2LMHeadModel(config)
        with_mask = False
    else:
        raise ValueError(kind)
    ids = torch.randint(0, vocab, (1, seq))
    args = (ids, torch.ones(1, seq, dtype=torch.long)) if with_mask else (ids,)
    return _Logits(model.eval(), with_mask).eval(), args, vocab
