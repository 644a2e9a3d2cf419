"""A layer-sequence generator written by another tool (Keras, a PyTorch DCGAN), behind latentctl's
generator interface (models/interface.py). The layers themselves are ``SequentialGenerator``'s,
built from the spec stored in the checkpoint's config (``ModelConfig.network``)."""

from __future__ import annotations

import torch
from torch import nn

from latentctl.config import ModelConfig
from latentctl.errors import CheckpointError
from latentctl.models.interface import linear_map
from latentctl.models.sequential import OPS_WITH_TENSORS, SequentialGenerator

# What follows the first weighted layer and still belongs to GANSpace's "first features": its
# normalisation and activation (the seed's leaky_relu(fc(z)) has the same shape).
_FEATURE_TAIL = ("batchnorm", "leaky_relu", "relu", "tanh", "sigmoid", "linear", "dropout")


class ImportedSequential(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.net = SequentialGenerator(config.network)
        spec = config.network
        if (spec["latent_dim"], spec["channels"], list(spec["image_size"])) != (
            config.latent_dim,
            config.channels,
            [config.image_size, config.image_size],
        ):
            raise CheckpointError("the layer spec disagrees with the model's latent size, channels or picture size")
        self.output_range = config.network.get("output_range", "tanh")
        ops = [layer["op"] for layer in config.network["layers"]]
        # index of the first layer with weights: everything before it is a reshape of z
        self._first = next(i for i, op in enumerate(ops) if op in OPS_WITH_TENSORS)
        end = self._first + 1
        while end < len(ops) and ops[end] in _FEATURE_TAIL:
            end += 1
        self._features_end = end

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, S, S) in [-1, 1] (a sigmoid network's [0, 1] rescaled)."""
        x = self.net(z)
        return x * 2 - 1 if self.output_range == "sigmoid" else x

    def _run(self, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for layer in self.net.layers[start:stop]:
            x = layer(x)
        return x

    def sefa_weight(self) -> torch.Tensor:
        dim = self.config.latent_dim
        return linear_map(self.net.layers[self._first], dim, prefix=lambda z: self._run(z, 0, self._first))

    def first_features(self, z: torch.Tensor) -> torch.Tensor:
        return self._run(z, 0, self._features_end).reshape(len(z), -1)
