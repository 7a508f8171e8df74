"""The compact CNN, described once as a layer list so PyTorch, ONNX and the Keras 2 HDF5 file are one network.

A two-level stem first, 2x2/stride-2 then 2x2/stride-2 convolutions (each with BN + ReLU): on 2 shared CPU cores,
full-resolution 224x224 feature maps made training 3-5x slower (memory traffic). Model 2.x before 2.4.0 had one
4x4/stride-4 patch convolution, linear over its 16 pixels; the stem adds a non-linearity at 112x112 for the small,
faint stones, at about 15 % more time per training step. Every layer has an exact Keras equivalent ('valid'
stride-2 convs, 'same' 3x3 convs, 2x2 max pooling, BatchNorm eps 1e-3).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# (kind, filters, kernel, stride): conv = Conv2D without bias, always followed by BatchNorm + ReLU
LAYERS = [
    ('conv', 16, 2, 2),
    ('conv', 24, 2, 2),
    ('conv', 32, 3, 1),
    ('conv', 48, 3, 1),
    ('pool',),
    ('conv', 64, 3, 1),
    ('conv', 64, 3, 1),
    ('pool',),
    ('conv', 128, 3, 1),
    ('conv', 128, 3, 1),
]
BN_EPS = 1e-3
CLASSES = ['Normal', 'Stone']


POOLINGS = ('mean', 'max')


class KidneyStoneNet(nn.Module):
    """Returns (logits [N,2], cam [N,2,h,w]); cam is the head applied at every location.

    pooling 'mean': a Dense head on the last features; logits = spatial mean of cam (model 1.x).
    pooling 'max': a 1x1 convolution gives one Stone evidence value e per location; cam = [-e/2, e/2] per location
    and logits = [-m/2, m/2] with m = max of e, so P(Stone) = sigmoid(m / T): the strongest location decides, a
    one-cell stone no longer competes with 195 cells of background, and the Stone-minus-Normal map is e itself.
    """

    def __init__(self, pooling='mean'):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f'pooling must be one of {POOLINGS}')
        self.pooling = pooling
        blocks = []
        channels = 1
        for spec in LAYERS:
            if spec[0] == 'pool':
                blocks.append(nn.MaxPool2d(2))
                continue
            _, filters, kernel, stride = spec
            padding = 0 if stride == kernel else kernel // 2
            blocks += [nn.Conv2d(channels, filters, kernel, stride, padding, bias=False),
                       nn.BatchNorm2d(filters, eps=BN_EPS, momentum=0.01), nn.ReLU(inplace=True)]
            channels = filters
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(channels, len(CLASSES) if pooling == 'mean' else 1)

    def forward(self, x):
        f = self.features(x)
        evidence = torch.einsum('nchw,kc->nkhw', f, self.head.weight) + self.head.bias[None, :, None, None]
        if self.pooling == 'mean':
            return evidence.mean(dim=(2, 3)), evidence
        peak = evidence.amax(dim=(2, 3))
        return torch.cat([-peak / 2, peak / 2], 1), torch.cat([-evidence / 2, evidence / 2], 1)


def cam_size(input_size=224):
    size = input_size
    for spec in LAYERS:
        if spec[0] == 'pool':
            size //= 2
        elif spec[3] == spec[2]:
            size //= spec[3]
    return size


def stone_map(cam):
    """Per-location Stone-minus-Normal evidence, the quantity the localisation loss shapes."""
    return cam[:, 1] - cam[:, 0]


def mask_to_cam(masks, size):
    """Box masks [N,224,224] in 0..1 -> fraction of each CAM cell covered by a stone box."""
    return F.adaptive_avg_pool2d(masks[:, None], size)[:, 0]
