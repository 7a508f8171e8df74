"""Validation decisions: the figures a checkpoint is judged by, the score that picks it and the threshold rule. Only
validation slices pass through here (train.py); the evaluation of held-out test data lives in model/evaluation/."""
import numpy as np
import torch
from sklearn.metrics import roc_auc_score


def val_masks(data, rows):
    """Boolean masks over `rows` for every kind of validation slice the report and the decisions use."""
    entries = [data.entries[i] for i in rows]

    def pick(test):
        return np.array([bool(test(e)) for e in entries])
    return {
        'ct': pick(lambda e: e['source'] == 'ct-kidney'),
        'ct_stone_axial': pick(lambda e: e['source'] == 'ct-kidney' and e['label'] == 1 and e['plane'] == 'axial'),
        'cyst': pick(lambda e: e['source'] == 'ct-kidney-other' and e['finding'] == 'cyst'),
        'tumor': pick(lambda e: e['source'] == 'ct-kidney-other' and e['finding'] == 'tumor'),
        'original': pick(lambda e: e['source'] == 'yildirim' and e['variant'] == 'original'),
        'removed': pick(lambda e: e['source'] == 'yildirim' and e['variant'] == 'removed'),
        'decoy': pick(lambda e: e['source'] == 'yildirim' and e['variant'] == 'decoy'),
        'added': pick(lambda e: e['source'] == 'stone-added' and e['variant'] == 'stone-added'),
        'added_decoy': pick(lambda e: e['source'] == 'stone-added' and e['variant'] == 'stone-added-decoy'),
        'mimic': pick(lambda e: e['source'] == 'stone-added' and e['variant'] == 'vascular-mimic'),
        'real': pick(lambda e: e['source'] != 'stone-added'),
    }


def auc(p, positives, negatives):
    return roc_auc_score(np.r_[np.ones(positives.sum()), np.zeros(negatives.sum())], np.r_[p[positives], p[negatives]])


def val_report(data, rows, logits, temperature=1.0):
    """Val figures at the threshold rule (AUCs and specificities do not depend on the temperature)."""
    p = torch.softmax(logits / temperature, 1)[:, 1].numpy()
    labels = data.labels[rows].numpy()
    m = val_masks(data, rows)
    threshold = choose_threshold(p, m, labels)
    called = p >= threshold
    report = {
        'val_ct_auc': roc_auc_score(labels[m['ct']], p[m['ct']]),
        'val_noncontrast_auc': auc(p, m['ct_stone_axial'], m['cyst']),
        'val_pairs_auc': auc(p, m['original'], m['removed']),
        'val_stone_added_auc': auc(p, m['added'], m['added_decoy']),
        'val_pair_win_rate': float(np.mean(p[m['original']] > p[m['removed']])),
        'val_ct_sensitivity': called[m['ct'] & (labels == 1)].mean(),
        'val_ct_specificity': 1 - called[m['ct'] & (labels == 0)].mean(),
        'val_cyst_specificity': 1 - called[m['cyst']].mean(),
        'val_tumor_specificity': 1 - called[m['tumor']].mean(),
        'val_yildirim_sensitivity': called[m['original']].mean(),
        'val_yildirim_removed_specificity': 1 - called[m['removed']].mean(),
        'val_yildirim_decoy_sensitivity': called[m['decoy']].mean(),
        'val_stone_added_sensitivity': called[m['added']].mean(),
        'val_vascular_mimic_specificity': 1 - called[m['mimic']].mean(),
        'val_ct_ece': expected_calibration_error(p[m['ct']], labels[m['ct']]),
    }
    report = {k: round(float(v), 4) for k, v in report.items()}
    return report, threshold


def selection_score(report):
    """Ranking (ct-kidney, non-contrast, yildirim pairs, stone-added pairs AUC) and the operating point (the six
    rates the threshold rule balances, at that threshold) count half each."""
    ranking = np.mean([report[k] for k in ('val_ct_auc', 'val_noncontrast_auc', 'val_pairs_auc', 'val_stone_added_auc')])
    operating = np.mean([report[k] for k in ('val_ct_sensitivity', 'val_yildirim_sensitivity', 'val_ct_specificity',
                                             'val_cyst_specificity', 'val_tumor_specificity',
                                             'val_yildirim_removed_specificity')])
    return round(float(0.5 * ranking + 0.5 * operating), 4)


def expected_calibration_error(p, labels, bins=10):
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (p >= lo) & (p < hi) if hi < 1 else (p >= lo)
        if sel.any():
            confidence = np.where(p[sel] >= 0.5, p[sel], 1 - p[sel]).mean()
            accuracy = ((p[sel] >= 0.5) == labels[sel]).mean()
            ece += sel.mean() * abs(confidence - accuracy)
    return ece


def choose_threshold(p, masks, labels):
    """The threshold that maximises the mean of six val rates, one per kind of slice a target is set for:
    sensitivity on ct-kidney Stone slices and on yildirim originals, specificity on ct-kidney Normal slices, cysts,
    tumours and stone-removed twins. Each kind counts the same however many slices it has, so neither the large
    ct-kidney Normal series nor the hardest yildirim stones set it alone. Among equally good thresholds (a
    plateau), the median one."""
    groups = [(p[masks['ct'] & (labels == 1)], True), (p[masks['original']], True),
              (p[masks['ct'] & (labels == 0)], False), (p[masks['cyst']], False), (p[masks['tumor']], False),
              (p[masks['removed']], False)]
    candidates = np.unique(np.concatenate([scores for scores, _ in groups]))
    objective = np.zeros(len(candidates))
    for scores, positive in groups:
        below = np.searchsorted(np.sort(scores), candidates, side='left') / len(scores)  # share < threshold
        objective += (1 - below) if positive else below
    best = candidates[objective >= objective.max() - 1e-12]
    return float(best[(len(best) - 1) // 2])
