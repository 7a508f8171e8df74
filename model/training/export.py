"""Writes the files the service ships: ONNX (logits + cam), JSON sidecar, Keras 2 HDF5, parity fixture."""
import json
from pathlib import Path

import numpy as np
import onnx
import torch

from keras_h5 import keras_reference_forward, write_keras_h5
from network import CLASSES

REPO = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO.parent / 'shared'


def export_onnx(net, path, size):
    """The graph takes the sidecar-normalised tensor, exactly what `toTensorData` produces."""
    net.eval()
    dummy = torch.zeros(1, 1, size, size)
    torch.onnx.export(net, dummy, str(path), opset_version=13, input_names=['input'],
                      output_names=['logits', 'cam'],
                      dynamic_axes={'input': {0: 'batch'}, 'logits': {0: 'batch'}, 'cam': {0: 'batch'}})
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    return path.stat().st_size


def write_sidecar(path, data, mean, std, temperature, threshold, source, metrics):
    spec = {
        'name': 'kidney-stone-cnn',
        'version': source['version'],
        'classes': CLASSES,
        'positiveClass': 'Stone',
        'input': {**data.input, 'mean': [mean], 'std': [std]},
        'output': {'kind': 'logits'},
        'temperature': temperature,
        'threshold': threshold,
        'trainingDataHash': 'sha256:' + data.training_data_hash,
        'source': source,
        'metrics': metrics,
    }
    path.write_text(json.dumps(spec, indent=2) + '\n')


def write_keras(net, path, size, probe):
    """Writes the HDF5 file and returns max |logit difference| between it (numpy) and PyTorch on `probe`."""
    write_keras_h5(net, path, size)
    with torch.no_grad():
        expected = net(probe)[0].numpy()
    got = keras_reference_forward(path, probe.permute(0, 2, 3, 1).numpy())
    return float(np.abs(got - expected).max())


def parity_rows(data):
    """>= 60 real files: ct-kidney test + val of both classes, the untouched originals, yildirim test slices."""
    rows = []
    for split, per_class in (('test', 16), ('val', 6)):
        for label in (0, 1):
            candidates = [i for i in data.select(split, 'ct-kidney') if data.entries[i]['label'] == label]
            rows += candidates[::max(1, len(candidates) // per_class)][:per_class]
    for label in (0, 1):
        rows += [i for i in data.select('test', 'ct-kidney-original') if data.entries[i]['label'] == label][:5]
    yildirim = data.select('test', 'yildirim', 'original')
    rows += yildirim[::max(1, len(yildirim) // 14)][:14]
    return rows


def write_parity_fixture(net, data, mean, std, temperature, path):
    rows = parity_rows(data)
    x, _, _, _ = data.batch(rows)
    with torch.no_grad():
        logits = net((x - mean) / std)[0].double()
    probabilities = torch.softmax(logits / temperature, dim=1)
    items = [{'path': data.entries[i]['path'], 'label': CLASSES[data.entries[i]['label']],
              'logits': [round(v, 6) for v in logits[k].tolist()],
              'probabilities': [round(v, 6) for v in probabilities[k].tolist()]}
             for k, i in enumerate(rows)]
    path.write_text(json.dumps({
        'model': 'model/kidney-stone-cnn.onnx',
        'imagesRelativeTo': '/work/shared (../shared from the repo)',
        'temperature': temperature,
        'note': 'PyTorch outputs on the uint8 tensors exported by `npm run dataset` (decodeImage + resizeForModel)',
        'items': items}, indent=1) + '\n')
    return len(items)
