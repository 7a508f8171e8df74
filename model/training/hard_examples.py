"""Hard-example sampling: within each sampling cell, the rows the network currently gets most wrong are drawn more
often, so the few contrast Normal slices with a stone-white spot (excreted contrast in a calyx, an enhanced vessel
end-on) are not averaged away by the hundreds of easy slices of their series. Each cell keeps its share of the batch
(dataset.CELL_SHARE): the protocol and plane balancing is unchanged, only who is drawn inside a cell moves.
"""
import torch


class HardExampleWeights:
    """Per-row sampling weights from a running mean of each row's own classification loss.

    A row's weight inside its cell is proportional to (1 - strength) + strength * min(loss / cell mean loss, cap):
    strength 0 is the plain even spread, the cap keeps a mislabelled or unlearnable slice from taking its cell over.
    Rows not drawn yet count as their cell's mean.
    """

    def __init__(self, base_weights, cells, strength, cap=4.0, momentum=0.7):
        self.base = base_weights.double()
        names = sorted(set(cells))
        self.cell = torch.tensor([names.index(c) for c in cells])
        self.cell_count = len(names)
        self.share = torch.zeros(self.cell_count, dtype=torch.double).index_add_(0, self.cell, self.base)
        self.loss = torch.full((len(cells),), float('nan'), dtype=torch.double)
        self.strength, self.cap, self.momentum = strength, cap, momentum

    def observe(self, positions, losses):
        """positions: indices into the rows this was built for; losses: each one's loss this step (repeats allowed,
        the last one counts)."""
        old = self.loss[positions]
        new = losses.detach().double()
        self.loss[positions] = torch.where(torch.isnan(old), new, self.momentum * old + (1 - self.momentum) * new)

    def weights(self):
        if self.strength <= 0:
            return self.base
        seen = ~torch.isnan(self.loss)
        totals = torch.zeros(self.cell_count, dtype=torch.double).index_add_(0, self.cell[seen], self.loss[seen])
        counts = torch.zeros(self.cell_count, dtype=torch.double).index_add_(0, self.cell[seen], torch.ones_like(self.loss[seen]))
        cell_mean = (totals / counts.clamp(min=1)).clamp(min=1e-12)
        loss = torch.where(seen, self.loss, cell_mean[self.cell])
        ratio = (loss / cell_mean[self.cell]).clamp(max=self.cap)
        # cells with no row seen yet: ratio 1 everywhere, the even spread
        ratio = torch.where(counts[self.cell] > 0, ratio, torch.ones_like(ratio))
        q = self.base * ((1 - self.strength) + self.strength * ratio)
        cell_q = torch.zeros(self.cell_count, dtype=torch.double).index_add_(0, self.cell, q)
        return q * (self.share / cell_q)[self.cell]
