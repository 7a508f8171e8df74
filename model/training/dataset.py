"""Reads the arrays `npm run dataset` exported (service preprocessing) and augments batches.

Intensity augmentation is strong on purpose: on ct-kidney, grey level and contrast phase predict the label
(mean grey alone: AUC 0.82), so window, gamma, contrast and brightness are randomised per image.
"""
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

CACHE = Path(__file__).resolve().parent / '.cache'


class ExportedData:
    def __init__(self, cache=CACHE):
        index = json.loads((cache / 'index.json').read_text())
        self.input = index['input']
        self.training_data_hash = index['trainingDataHash']
        self.entries = index['entries']
        side = self.input['height']
        self.images = torch.from_numpy(np.fromfile(cache / 'images.u8', dtype=np.uint8).reshape(-1, side, side))
        self.masks = torch.from_numpy(np.fromfile(cache / 'masks.u8', dtype=np.uint8).reshape(-1, side, side))
        self.labels = torch.tensor([e['label'] for e in self.entries])
        self.mask_rows = torch.tensor([e['mask'] for e in self.entries])
        assert len(self.images) == len(self.entries)

    def select(self, split, source=None, variant=None):
        return [i for i, e in enumerate(self.entries)
                if e['split'] == split and (source is None or e['source'] == source)
                and (variant is None or e['variant'] == variant)]

    def cell(self, i):
        """Sampling cell: ct-kidney label x plane, yildirim original / removed / decoy."""
        e = self.entries[i]
        if e['source'] == 'yildirim':
            return 'yildirim:' + e['variant']
        return f"{e['source']}:{e['label']}:{e['plane']}"

    def batch(self, rows):
        rows = torch.as_tensor(rows)
        x = self.images[rows].float().div_(255.0)[:, None]
        m = torch.zeros_like(x)
        has = self.mask_rows[rows] >= 0
        if has.any():
            m[has] = self.masks[self.mask_rows[rows][has]].float().div_(255.0)[:, None]
        return x, m, self.labels[rows], has


# each cell's share of a training batch: the two datasets count equally, so do the classes within each, and
# on ct-kidney the planes too (Normal is mostly axial, Stone about half coronal: plane must not predict the label)
CELL_SHARE = {
    'ct-kidney:0:axial': 0.125, 'ct-kidney:0:coronal': 0.125, 'ct-kidney:1:axial': 0.125, 'ct-kidney:1:coronal': 0.125,
    'yildirim:removed': 0.25, 'yildirim:original': 0.15, 'yildirim:decoy': 0.10,
}


def sampling_weights(data, rows):
    cells = [data.cell(i) for i in rows]
    counts = {c: cells.count(c) for c in set(cells)}
    return torch.tensor([CELL_SHARE[c] / counts[c] for c in cells], dtype=torch.double)


def augment(x, m, generator):
    """x, m: [N,1,H,W] in 0..1. Geometry (same for image and mask), then per-image intensity changes."""
    n = x.shape[0]

    def uniform(lo, hi, shape=(n,)):
        return torch.rand(shape, generator=generator) * (hi - lo) + lo

    angle = uniform(-0.3, 0.3)
    scale = uniform(0.85, 1.15)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, uniform(-0.1, 0.1)], 1),
                         torch.stack([sin * flip, cos, uniform(-0.1, 0.1)], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, align_corners=False, padding_mode='zeros')
    m = F.grid_sample(m, grid, align_corners=False, padding_mode='zeros')

    def per_image(v):
        return v[:, None, None, None]

    # window: a random grey range is stretched to 0..1 (contrast phase and scanner windowing vary)
    lo = per_image(uniform(-0.1, 0.2))
    hi = per_image(uniform(0.65, 1.15))
    x = ((x - lo) / (hi - lo)).clamp_(0, 1)
    x = x.pow(per_image(torch.exp(uniform(-0.5, 0.5))))
    x = x * per_image(uniform(0.75, 1.25)) + per_image(uniform(-0.1, 0.1))
    x = x + torch.randn(x.shape, generator=generator) * per_image(uniform(0, 0.03))
    return x.clamp_(0, 1), m
