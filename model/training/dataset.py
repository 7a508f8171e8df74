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
        """Sampling cell: what the slice is (source, label, finding / variant) within its protocol and plane."""
        e = self.entries[i]
        if e['source'] in ('yildirim', 'stone-added'):
            kind = e['variant'] if e['source'] == 'yildirim' else f"{e['variant']}:{e['finding']}"
            return f"{e['source']}:{kind}"
        if e['source'] == 'ct-kidney-other':
            return f"ct-kidney-other:{e['finding']}"
        return f"{e['source']}:{e['label']}:{e['plane']}"

    def batch(self, rows):
        rows = torch.as_tensor(rows)
        x = self.images[rows].float().div_(255.0)[:, None]
        m = torch.zeros_like(x)
        has = self.mask_rows[rows] >= 0
        if has.any():
            m[has] = self.masks[self.mask_rows[rows][has]].float().div_(255.0)[:, None]
        return x, m, self.labels[rows], has


# Each cell's share of a training batch. Within the non-contrast blocks Stone and no-stone weigh the same, so
# neither the protocol nor the plane predicts the label where stones are asked about:
#   non-contrast axial:   Stone 0.20 = ct-kidney Stone 0.12 + stone-added cysts 0.08;
#                         no stone 0.20 = cysts 0.09 + their stone-added decoy twins 0.07 + vascular mimics 0.04
#   non-contrast coronal: Stone 0.16 = ct-kidney Stone 0.07 + yildirim original 0.06 + decoy 0.03;
#                         no stone 0.16 = yildirim stones removed
#   contrast axial:       Stone 0.07 = stone-added ct-kidney Normal 0.05 + stone-added tumours 0.02;
#                         no stone 0.18 = ct-kidney Normal 0.11 + tumours 0.04 + decoy twins 0.02 + 0.01
#   contrast coronal:     no stone only (ct-kidney Normal 0.08): no coronal contrast slice with a stone exists here
# Vascular mimics: a stone patch in front of the vertebral body (the aorta), labelled no stone: calcified vessel
# walls are the classic stone mimic on non-contrast CT. Only in the non-contrast block: taken from the contrast
# no-stone share as well, they cost the ct-kidney figures more than they gave (model/MODEL_CARD.md, what was tried).
# Enhanced vessels and cortex are the bright spots a max-pooling network must learn not to call stones, hence the
# larger contrast no-stone share.
# A stone inside enhanced parenchyma is hard to see at all (which is why stone CTs are unenhanced): given more
# weight (0.16 each side) it cost the model on everything else (model/MODEL_CARD.md, what was tried).
CELL_SHARE = {
    'ct-kidney:1:axial': 0.12, 'stone-added:stone-added:cyst': 0.08,
    'ct-kidney-other:cyst': 0.09, 'stone-added:stone-added-decoy:cyst': 0.07, 'stone-added:vascular-mimic:cyst': 0.04,
    'ct-kidney:1:coronal': 0.07, 'yildirim:original': 0.06, 'yildirim:decoy': 0.03,
    'yildirim:removed': 0.16,
    'stone-added:stone-added:normal': 0.05, 'stone-added:stone-added:tumor': 0.02,
    'ct-kidney:0:axial': 0.11, 'ct-kidney-other:tumor': 0.04,
    'stone-added:stone-added-decoy:normal': 0.02, 'stone-added:stone-added-decoy:tumor': 0.01,
    'ct-kidney:0:coronal': 0.08,
}


def sampling_weights(data, rows):
    """Per-row sampling weight: the row's cell share spread evenly over the cell's rows."""
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
