"""Platt scaling of the logit margin, folded into the network so the service's softmax(logits / T) needs nothing new."""
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
