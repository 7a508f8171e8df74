"""Platt scaling of the logit margin, folded into the network so the service's softmax(logits / T) needs nothing new."""
import copy

import torch
import torch.nn.functional as F


def fit_platt(margin, labels):
    """Platt scaling, P(Stone) = sigmoid(a * margin + b), fitted by log loss. A temperature alone (b = 0) cannot
    calibrate the max-pooled network: its margin is the strongest location's evidence, offset from 0 on every
    slice, so the shipped threshold sat at P 0.97 and the ct-kidney ECE at 0.26."""
    log_a = torch.zeros(1, dtype=torch.double, requires_grad=True)
    b = torch.zeros(1, dtype=torch.double, requires_grad=True)
    opt = torch.optim.LBFGS([log_a, b], lr=0.1, max_iter=500)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(margin * log_a.exp() + b, labels.double())
        loss.backward()
        return loss
    opt.step(closure)
    return float(log_a.exp()), float(b)


def fold_calibration(net, a, b):
    """Folds sigmoid(a * margin + b) into the network and a temperature, so the service (softmax(logits / T)) needs
    nothing new: the margin gains b / a through the head bias (a constant added to every location of the evidence
    map moves its maximum, and its mean, by the same amount; the findings' level and boxes do not move) and
    T = 1 / a. Returns (temperature, shift)."""
    temperature = round(1 / a, 4)
    shift = b * temperature
    with torch.no_grad():
        if net.pooling == 'max':
            net.head.bias += shift
        else:
            net.head.bias += torch.tensor([-shift / 2, shift / 2], dtype=net.head.bias.dtype)
    return temperature, shift


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
