"""The compact CNN, described once as a layer list so PyTorch, ONNX and the Keras 2 HDF5 file are one network.

A 4x4/stride-4 patch convolution first: on 2 shared CPU cores, full-resolution 224x224 feature maps made
training 3-5x slower (memory traffic), while a stone of 5-10 px still spans one or more patches. Every layer
has an exact Keras equivalent ('valid' patch conv, 'same' 3x3 convs, 2x2 max pooling, BatchNorm eps 1e-3).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

# (kind, filters, kernel, stride): conv = Conv2D without bias, always followed by BatchNorm + ReLU
LAYERS = [
    ('conv', 24, 4, 4),
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


class KidneyStoneNet(nn.Module):
    """Returns (logits [N,2], cam [N,2,h,w]); cam is the head applied at every location, logits = its mean."""

    def __init__(self):
        super().__init__()
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
        self.head = nn.Linear(channels, len(CLASSES))

    def forward(self, x):
        f = self.features(x)
        cam = torch.einsum('nchw,kc->nkhw', f, self.head.weight) + self.head.bias[None, :, None, None]
        logits = cam.mean(dim=(2, 3))
        return logits, cam


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
