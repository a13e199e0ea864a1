"""
Task conditioning: task names -> task tokens that both DiTs cross-attend to.

`TaskEncoder` is a learned table (Lt tokens of width Dt per task name). A text encoder would
be another module with the same `forward(task_ids)` / `ids_for(names)` shape contract:
the DiTs only see (B, Lt, Dt) tokens.
"""

from typing import Sequence

from ahawam_ros.model.config import TaskConfig
import torch
from torch import nn


class TaskEncoder(nn.Module):
    """
    Learned embedding table from task index to task tokens.

    Parameters
    ----------
    config : TaskConfig
        Task names (their order defines the indices), tokens per task and width.

    """

    def __init__(self, config: TaskConfig):
        super().__init__()
        self.config = config
        self.table = nn.Embedding(len(config.task_names), config.num_tokens * config.width)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Unit-variance task tokens, like the normalised output of a text encoder."""
        nn.init.normal_(self.table.weight, std=1.0)

    def ids_for(self, names: Sequence[str], device=None) -> torch.Tensor:
        """Return (B,) int64 task indices; an unknown name raises listing the valid ones."""
        index = {name: i for i, name in enumerate(self.config.task_names)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise ValueError(f'unknown task name(s) {unknown}; valid: {list(index)}')
        return torch.tensor([index[n] for n in names], dtype=torch.long, device=device)

    def forward(self, task_ids: torch.Tensor) -> torch.Tensor:
        """Map (B,) int64 task indices to (B, Lt, Dt) task tokens."""
        return self.table(task_ids).unflatten(-1, (self.config.num_tokens, self.config.width))
