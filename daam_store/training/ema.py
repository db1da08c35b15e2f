"""Exponential moving average of model weights (what the built-in models ship)."""

from __future__ import annotations

import torch


class EMA:
    """Shadow copies of named parameters, updated with a decay that warms up:
    min(decay, (1 + n) / (10 + n)) after n updates, so early weights do not linger."""

    def __init__(self, named_parameters: dict[str, torch.nn.Parameter], decay: float) -> None:
        self.parameters = named_parameters
        self.shadow = {name: p.detach().clone() for name, p in named_parameters.items()}
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        names = list(self.parameters)
        torch._foreach_lerp_([self.shadow[n] for n in names], [self.parameters[n].detach() for n in names], 1 - decay)

    def weights(self, prefix: str) -> dict[str, torch.Tensor]:
        """The shadow weights whose names start with `prefix`, with the prefix removed."""
        return {name[len(prefix) :]: w for name, w in self.shadow.items() if name.startswith(prefix)}

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        with torch.no_grad():
            for name, shadow in self.shadow.items():
                shadow.copy_(state["shadow"][name])
