"""Writes the files the service ships: Keras 2 HDF5, ONNX (logits + cam) converted from it, JSON sidecar, parity
fixture. Run alone, it re-exports a trained checkpoint without retraining:

    /usr/bin/python3 model/training/export.py model/kidney-stone-cnn.pt --out model/kidney-stone-cnn
"""
import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import torch

from dataset import ExportedData
from keras_h5 import write_keras_h5
from network import CLASSES, KidneyStoneNet

REPO = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO.parent / 'shared'
PARITY_TOLERANCE = 1e-4


def export_model(net, out, size, x):
    """Writes <out>.h5 (Keras 2) and <out>.onnx converted from it by the project's Keras converter, which
    ships the ONNX only if its logits and cam match PyTorch's on `x` (normalised, NCHW) within 1e-4 (absolute
    for the logits; for cam relative to its largest value above magnitude 1).
    Returns the converter's report: input name / layout / dims and max |ONNX - PyTorch| per output."""
    net.eval()
    write_keras_h5(net, out.with_suffix('.h5'), size)
    with torch.no_grad():
        outputs = dict(zip(('logits', 'cam'), net(x)))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tensors = {'input': x.permute(0, 2, 3, 1), **outputs}  # the converted model is channels-last, like Keras
        for name, t in tensors.items():
            t.contiguous().numpy().astype('<f4').tofile(tmp / f'{name}.f32')
        info = {name: {'file': f'{name}.f32', 'dims': list(t.shape)} for name, t in tensors.items()}
        model_input = info.pop('input')
        (tmp / 'check.json').write_text(json.dumps({'tolerance': PARITY_TOLERANCE, 'input': model_input, 'expected': info}))
        done = subprocess.run(['npx', 'tsx', 'model/training/convert-keras.ts', str(out.with_suffix('.h5')),
                               str(out.with_suffix('.onnx')), str(tmp / 'check.json')],
                              cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f'Keras -> ONNX conversion failed its PyTorch check:\n{done.stdout}{done.stderr}')
    return json.loads(done.stdout.strip().splitlines()[-1])


def export_facts(report):
    """What the sidecar records about how its ONNX was made."""
    return {'producer': 'model/training/convert-keras.ts: inference/keras converter on kidney-stone-cnn.h5',
            'maxAbsDiffVsPytorch': {name: o['maxAbsDiff'] for name, o in report['outputs'].items()},
            'checkedOnImages': report['images'], 'kerasSha256': report['kerasSha256']}


def write_sidecar(path, data, mean, std, temperature, threshold, source, metrics, layout):
    """layout: the converted ONNX's input layout (NHWC, as Keras); with 1 channel the tensor bytes are the same."""
    spec = {
        'name': 'kidney-stone-cnn',
        'version': source['version'],
        'classes': CLASSES,
        'positiveClass': 'Stone',
        # the HU window the service applies to DICOM input before the model (abdomen soft tissue, as the exports)
        'input': {**data.input, 'layout': layout, 'mean': [mean], 'std': [std], 'window': {'center': 40, 'width': 400}},
        'output': {'kind': 'logits'},
        'temperature': temperature,
        'threshold': threshold,
        'trainingDataHash': 'sha256:' + data.training_data_hash,
        'source': source,
        'metrics': metrics,
    }
    path.write_text(json.dumps(spec, indent=2) + '\n')


def parity_rows(data):
    """>= 60 real files: ct-kidney test + val of both classes, the untouched originals, cyst and tumour test slices,
    yildirim test slices."""
    rows = []
    for split, per_class in (('test', 16), ('val', 6)):
        for label in (0, 1):
            candidates = [i for i in data.select(split, 'ct-kidney') if data.entries[i]['label'] == label]
            rows += candidates[::max(1, len(candidates) // per_class)][:per_class]
    for label in (0, 1):
        rows += [i for i in data.select('test', 'ct-kidney-original') if data.entries[i]['label'] == label][:5]
    for finding in ('cyst', 'tumor'):
        rows += [i for i in data.select('test', 'ct-kidney-other') if data.entries[i]['finding'] == finding][::25][:5]
    yildirim = data.select('test', 'yildirim', 'original')
    rows += yildirim[::max(1, len(yildirim) // 14)][:14]
    return rows


def parity_inputs(data, mean, std):
    """The parity fixture's images, normalised as the sidecar says (NCHW, PyTorch's layout)."""
    x, _, _, _ = data.batch(parity_rows(data))
    return (x - mean) / std


def write_parity_fixture(net, data, mean, std, temperature, path):
    rows = parity_rows(data)
    with torch.no_grad():
        logits = net(parity_inputs(data, mean, std))[0].double()
    probabilities = torch.softmax(logits / temperature, dim=1)
    items = [{'path': data.entries[i]['path'], 'label': CLASSES[data.entries[i]['label']],
              'logits': [round(v, 6) for v in logits[k].tolist()],
              'probabilities': [round(v, 6) for v in probabilities[k].tolist()]}
             for k, i in enumerate(rows)]
    path.write_text(json.dumps({
        'model': 'model/kidney-stone-cnn.onnx',
        'imagesRelativeTo': '/work/shared (../shared from the repo)',
        'temperature': temperature,
        'note': 'PyTorch outputs on the uint8 tensors exported by `npm run dataset` (the pixels the service feeds the model)',
        'items': items}, indent=1) + '\n')
    return len(items)


def main():
    p = argparse.ArgumentParser(description='Re-exports a trained checkpoint (no retraining): .h5, the ONNX '
                                'converted from it, and the layout / export facts in the existing sidecar.')
    p.add_argument('checkpoint', help='state dict written by train.py next to its outputs (<out>.pt)')
    p.add_argument('--out', default=str(REPO / 'model' / 'kidney-stone-cnn'),
                   help='output path without extension; its .json sidecar, from the same training run, is updated')
    p.add_argument('--fixture', default=str(REPO / 'test' / 'fixtures' / 'model-parity.json'),
                   help='parity fixture of the same training run, which the checkpoint must reproduce')
    args = p.parse_args()
    torch.set_num_threads(2)
    out = Path(args.out)
    spec = json.loads(out.with_suffix('.json').read_text())
    net = KidneyStoneNet(spec['source']['args'].get('pooling', 'mean'))
    net.load_state_dict(torch.load(args.checkpoint, map_location='cpu'))
    net.eval()
    data = ExportedData()
    x = parity_inputs(data, spec['input']['mean'][0], spec['input']['std'][0])

    # The checkpoint must be the network the sidecar and the fixture describe, not another run's.
    fixture = json.loads(Path(args.fixture).read_text())
    if [data.entries[i]['path'] for i in parity_rows(data)] != [item['path'] for item in fixture['items']]:
        raise SystemExit(f'{args.fixture} lists other images than parity_rows(): exported data changed?')
    with torch.no_grad():
        logits = net(x)[0].double()
    fixture_diff = float((logits - torch.tensor([item['logits'] for item in fixture['items']])).abs().max())
    if fixture_diff > 1e-5:
        raise SystemExit(f'{args.checkpoint} does not reproduce {args.fixture} (max logit diff {fixture_diff})')

    report = export_model(net, out, spec['input']['height'], x)
    spec['input']['layout'] = report['layout']
    spec['source'].pop('kerasMaxAbsDiff', None)
    spec['source']['onnxExport'] = export_facts(report)
    out.with_suffix('.json').write_text(json.dumps(spec, indent=2) + '\n')
    print(json.dumps({'checkpointVsFixtureMaxLogitDiff': fixture_diff, **report}))


if __name__ == '__main__':
    main()
