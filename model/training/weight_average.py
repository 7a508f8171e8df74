"""The weights that are evaluated and shipped: a moving average of the trained ones."""
import copy

import torch


class WeightAverage:
    """An exponential moving average of the weights and BatchNorm statistics, the network that is evaluated and
    shipped. The raw weights' val ct-kidney AUC moved by up to 0.03 between checkpoints 250 steps apart late in
    training (2.1.0's run, bench/results/training-2026-12-04-weight-average.json), so picking the best raw
    checkpoint picked partly noise; the average is smoother. The decay ramps up as (1 + n) / (10 + n) (0.998 from
    update 4490 on), so early steps do not keep the random initial weights."""

    def __init__(self, net, decay):
        self.decay = decay
        self.net = copy.deepcopy(net)
        self.updates = 0

    @torch.no_grad()
    def update(self, net):
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for mine, theirs in zip(self.net.state_dict().values(), net.state_dict().values()):
            if mine.dtype.is_floating_point:
                mine.mul_(d).add_(theirs, alpha=1 - d)
            else:
                mine.copy_(theirs)
