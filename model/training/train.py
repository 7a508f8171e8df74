"""Trains the kidney stone CNN from scratch on the exported (service-preprocessed) data and writes the shipped
files. Run through `npm run train`; `/usr/bin/python3 model/training/train.py --help` lists the knobs.

Model selection, temperature and threshold use validation data only (ct-kidney val, two coronal Normal train
series moved to validation, ct-kidney-other val cyst and tumour series, yildirim val groups and the stone-added
twins of val slices); test data is never looked at here except to write the parity fixture (PyTorch outputs, no
decisions).
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from calibration import fit_platt, fold_calibration
from dataset import ExportedData, sampling_weights
from hard_examples import HardExampleWeights
from pipeline import BackgroundValidation, BatchPrefetcher
from selection import selection_score, val_masks, val_report
from export import REPO, export_facts, export_model, parity_inputs, write_parity_fixture, write_sidecar
from network import LAYERS, POOLINGS, KidneyStoneNet, cam_size, mask_to_cam, stone_map
from weight_average import WeightAverage


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--steps', type=int, default=6000, help='optimizer steps (batch size --batch)')
    p.add_argument('--max-minutes', type=float, default=0,
                   help='stop after this long and ship the best val checkpoint (0: off). A time-based stop makes the '
                        'result depend on the machine\'s speed, so the shipped run ends on its step count')
    p.add_argument('--pooling', choices=POOLINGS, default='max', help='how the activation map becomes the logits')
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--threads', type=int, default=1,
                   help='PyTorch threads of each of the loop\'s threads (training, batch drawing, validation); results '
                        'are reproducible for a given count. One: on 2 shared cores, two OpenMP threads ran 5-8x '
                        'slower than one whenever other jobs ran (spin-waiting at barriers)')
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--cam-weight', type=float, default=0.5, help='weight of the box-guided localisation loss')
    p.add_argument('--weight-average', type=float, default=0.998,
                   help='decay of the exponential moving average of the weights that is evaluated and shipped (0: the raw weights)')
    p.add_argument('--label-smoothing', type=float, default=0.0,
                   help='cross-entropy label smoothing (caps confident probabilities below 1, which temperature scaling cannot undo)')
    p.add_argument('--hard-examples', type=float, default=0.5,
                   help='strength of hard-example sampling inside each cell (0: even spread; hard_examples.py)')
    p.add_argument('--hard-examples-after', type=float, default=0.15,
                   help='share of the steps (the warm-up) drawn evenly before the hard-example weights apply')
    p.add_argument('--eval-every', type=int, default=250)
    p.add_argument('--coronal-normal-val-series', type=int, default=2,
                   help='coronal Normal ct-kidney train series moved to validation (ct-kidney val has none)')
    p.add_argument('--seed', type=int, default=20261125)
    p.add_argument('--out', default=str(REPO / 'model' / 'kidney-stone-cnn'), help='output path without extension')
    p.add_argument('--fixture', default=str(REPO / 'test' / 'fixtures' / 'model-parity.json'))
    p.add_argument('--version', default='2.5.0', help='model version in the sidecar; bump it whenever the shipped weights change')
    return p.parse_args()


def predict(net, data, rows, mean, std, batch=128):
    net.eval()
    out = []
    with torch.no_grad():
        for k in range(0, len(rows), batch):
            x, _, _, _ = data.batch(rows[k:k + batch])
            out.append(net((x - mean) / std)[0])
    net.train()
    return torch.cat(out).double()


def coronal_normal_val_series(data, count, seed):
    """ct-kidney val has no coronal Normal slice, so without these the checkpoint, temperature and threshold would be
    chosen blind to the plane shortcut (coronal looks like Stone). Whole series move, chosen by the seed."""
    groups = sorted({e['group'] for e in data.entries if e['source'] == 'ct-kidney' and e['split'] == 'train'
                     and e['label'] == 0 and e['plane'] == 'coronal'})
    return set(np.random.default_rng(seed).choice(groups, size=count, replace=False).tolist()) if count else set()


def localisation_loss(cam, masks, has_mask):
    """Box-guided: Stone evidence high in CAM cells covered by a stone box, low elsewhere (and everywhere on
    stone-removed slices); positives and negatives weigh equally so a few stone cells are not drowned."""
    if not has_mask.any():
        return cam.sum() * 0
    s = stone_map(cam[has_mask])
    target = (mask_to_cam(masks[has_mask][:, 0], s.shape[-1]) > 0.05).float()
    bce = F.binary_cross_entropy_with_logits(s, target, reduction='none')
    pos = (bce * target).sum() / target.sum().clamp(min=1)
    neg = (bce * (1 - target)).sum() / (1 - target).sum().clamp(min=1)
    return pos + neg


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    started = time.time()
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    data = ExportedData()
    moved = coronal_normal_val_series(data, args.coronal_normal_val_series, args.seed)
    train_rows = [i for i in data.select('train') if data.entries[i]['group'] not in moved]
    val_rows = [i for i in data.select('val') if data.entries[i]['source'] != 'ct-kidney-original']
    val_rows += [i for i in data.select('train', 'ct-kidney') if data.entries[i]['group'] in moved]
    sample = torch.as_tensor(train_rows)[torch.randperm(len(train_rows), generator=gen)[:1000]]
    mean = round(float(data.images[sample].float().mean() / 255), 4)
    std = round(float(data.images[sample].float().std() / 255), 4)
    weights = sampling_weights(data, train_rows)
    hard = HardExampleWeights(weights, [data.cell(i) for i in train_rows], args.hard_examples)
    hard_from = int(args.hard_examples_after * args.steps)
    train_rows = torch.as_tensor(train_rows)
    print(f'train {len(train_rows)} val {len(val_rows)} (with train series {sorted(moved)}) mean {mean} std {std} '
          f'cam {cam_size()}x{cam_size()} pooling {args.pooling}', flush=True)

    net = KidneyStoneNet(args.pooling)
    average = WeightAverage(net, args.weight_average) if args.weight_average > 0 else None
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.15)
    def validate(evaluated):
        val_logits = predict(evaluated, data, val_rows, mean, std)
        report, _ = val_report(data, val_rows, val_logits)
        return selection_score(report), val_logits, report

    batches = BatchPrefetcher(data, train_rows, args.batch, gen, args.threads)
    validation = BackgroundValidation(validate, args.threads)
    batches.request(weights)
    seen = 0
    tick = time.time()
    for step in range(1, args.steps + 1):
        picked, x, m, y, has = batches.take()
        reweigh = step >= hard_from and step % 25 == 0
        if not reweigh and step < args.steps:
            batches.request(weights)
        logits, cam = net((x - mean) / std)
        ce_each = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing, reduction='none')
        ce = ce_each.mean()
        hard.observe(picked, ce_each)
        if reweigh:
            weights = hard.weights()
            if step < args.steps:
                batches.request(weights)
        loc = localisation_loss(cam, m, has)
        loss = ce + args.cam_weight * loc
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if average is not None:
            average.update(net)
        seen += len(picked)
        if step % 25 == 0:
            print(f'step {step} ce {ce.item():.3f} loc {loc.item():.3f} {seen / (time.time() - tick):.1f} img/s '
                  f'{(time.time() - started) / 60:.1f} min', flush=True)
        out_of_time = args.max_minutes > 0 and (time.time() - started) / 60 > args.max_minutes
        if step % args.eval_every == 0 or step == args.steps or out_of_time:
            validation.submit(step, net if average is None else average.net)
            if out_of_time:
                print(f'stopping at step {step}: --max-minutes {args.max_minutes} reached', flush=True)
                break
    batches.close()

    score, state, val_logits, best_step = validation.result()
    net.load_state_dict(state)
    net.eval()
    # calibrated on the real val slices of the ct-kidney hospital (ct-kidney, cysts, tumours): the yildirim
    # counterfactuals and the stone-added twins are synthetic, half of them Stone by design
    masks = val_masks(data, val_rows)
    calibration = torch.as_tensor(masks['ct'] | masks['cyst'] | masks['tumor'])
    margin = val_logits[:, 1] - val_logits[:, 0]
    a, b = fit_platt(margin[calibration], data.labels[val_rows][calibration])
    temperature, shift = fold_calibration(net, a, b)
    val_logits = val_logits + torch.tensor([-shift / 2, shift / 2], dtype=val_logits.dtype)
    report, threshold = val_report(data, val_rows, val_logits, temperature)
    threshold = round(threshold, 4)
    minutes = round((time.time() - started) / 60, 1)
    print(f'best step {best_step} score {score:.4f} temperature {temperature} threshold {threshold}: {report}', flush=True)

    out = Path(args.out)
    torch.save(net.state_dict(), out.with_suffix('.pt'))  # state dict for the Flask baseline in bench/baseline/
    export = export_model(net, out, data.input['height'], parity_inputs(data, mean, std))
    size = export['onnxBytes']
    pooled = 'global max of a one-channel evidence map (cam = [-e/2, e/2])' if args.pooling == 'max' else 'global average pooling'
    source = {
        'version': args.version,
        'framework': f'pytorch {torch.__version__}',
        'architecture': f'compact CNN, two 2x2/2 stem convs + 3x3 conv/BN/ReLU stack, {pooled}, dense head',
        'layers': [list(spec) for spec in LAYERS],
        'outputs': {'logits': '[N,2]', 'cam': f'[N,2,{cam_size()},{cam_size()}] head applied per location; '
                                              f'logits = its spatial {args.pooling}'},
        'trainedOn': 'ct-kidney train (minus the series moved to validation) + ct-kidney-other train (cyst, tumour: '
                     'Normal) + yildirim-stones train groups (original, stone-removed, decoy) + stone-added twins of '
                     'the stone-free axial train slices (yildirim train stones)',
        'selectedOn': 'ct-kidney val + coronal Normal train series ' + ', '.join(sorted(moved)) +
                      ' + ct-kidney-other val + yildirim-stones val groups + stone-added twins of val slices',
        'args': {k: v for k, v in vars(args).items() if k not in ('out', 'fixture', 'max_minutes')},
        'calibration': {'method': 'Platt scaling on the logit margin, folded into the head bias and the temperature',
                        'a': round(a, 6), 'b': round(b, 6), 'biasShift': round(shift, 6),
                        'fittedOn': 'real val slices of ct-kidney and ct-kidney-other'},
        'bestStep': best_step,
        'stepsRun': step,
        'onnxExport': export_facts(export),
        'data': 'ct-kidney and ct-kidney-other: Islam et al. 2022, Kaggle, CC BY 4.0; '
                'yildirim-stones: Yildirim et al. 2021, research use',
    }
    write_sidecar(out.with_suffix('.json'), data, mean, std, temperature, threshold, source, report, export['layout'])
    n = write_parity_fixture(net, data, mean, std, temperature, Path(args.fixture))
    # wall time goes to the log only: the sidecar must be the same bytes on every run of the same command
    print(json.dumps({'onnxBytes': size, 'onnxMaxAbsDiff': source['onnxExport']['maxAbsDiffVsPytorch'],
                      'parityItems': n, 'minutes': minutes}), flush=True)


if __name__ == '__main__':
    main()
