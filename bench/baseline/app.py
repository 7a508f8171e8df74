"""The old architecture, for the benchmark: Flask + the framework's own per-request predict.

One request = one upload saved to disk, PIL decode, resize, normalise, one PyTorch forward pass, JSON. The network
class is imported from the training pipeline (model/training/network.py) and loaded from the state dict it writes
next to the ONNX model (model/kidney-stone-cnn.pt), or, for a model trained before that file was written, from the
Keras 2 HDF5 copy of the same weights the pipeline writes next to it (model/kidney-stone-cnn.h5); input size, scaling, temperature and threshold come from the
same JSON sidecar the service reads, so both serve the same model with the same preprocessing contract.
Run with Debian's python3-flask and python3-torch: /usr/bin/python3 bench/baseline/app.py --port 5000
"""
import argparse
import io
import json
import os
import sys
import uuid
from pathlib import Path

import numpy as np
import torch
from flask import Flask, jsonify, request
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / 'model' / 'training'))
from network import KidneyStoneNet  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=5000)
    p.add_argument('--model', default=str(REPO / 'model' / 'kidney-stone-cnn.onnx'),
                   help='the served ONNX model; its .json sidecar and .pt state dict are read')
    p.add_argument('--checkpoint', help='PyTorch state dict (default: the model path with .pt)')
    p.add_argument('--threads', type=int, default=2, help='torch intra-op threads (the service uses the same budget)')
    p.add_argument('--upload-dir', default=None, help='where uploads are saved, as the old app did (default: none)')
    return p.parse_args()


def load_keras_h5(net, path):
    """Copies the weights of the pipeline's Keras file (model/training/keras_h5.py layout) into `net`, in layer order."""
    import h5py
    with h5py.File(path, 'r') as f:
        group = f['model_weights']
        layers = [name.decode() if isinstance(name, bytes) else name for name in group.attrs['layer_names']]
        arrays = {name: {w.split('/')[-1]: np.asarray(group[name][w]) for w in group[name].attrs['weight_names']}
                  for name in layers if len(group[name].attrs['weight_names']) > 0}
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in net.features if isinstance(m, torch.nn.BatchNorm2d)]
    keras_convs = [a for n, a in arrays.items() if n.startswith('conv2d')]
    keras_norms = [a for n, a in arrays.items() if n.startswith('batch_normalization')]
    if len(convs) != len(keras_convs) or len(norms) != len(keras_norms):
        raise ValueError(f'{path}: layer counts do not match the network')
    with torch.no_grad():
        for conv, a in zip(convs, keras_convs):
            conv.weight.copy_(torch.from_numpy(a['kernel:0'].transpose(3, 2, 0, 1)))  # HWIO -> OIHW
        for norm, a in zip(norms, keras_norms):
            norm.weight.copy_(torch.from_numpy(a['gamma:0']))
            norm.bias.copy_(torch.from_numpy(a['beta:0']))
            norm.running_mean.copy_(torch.from_numpy(a['moving_mean:0']))
            norm.running_var.copy_(torch.from_numpy(a['moving_variance:0']))
        if net.pooling == 'max':  # the head is the 1x1 'evidence' convolution (HWIO, 1x1 kernel)
            evidence = arrays['evidence']
            net.head.weight.copy_(torch.from_numpy(evidence['kernel:0'][0, 0].T))
            net.head.bias.copy_(torch.from_numpy(evidence['bias:0']))
            return
        dense = next(a for n, a in arrays.items() if n == 'logits' or n.startswith('dense'))  # 'logits' since the Functional .h5
        net.head.weight.copy_(torch.from_numpy(dense['kernel:0'].T))
        net.head.bias.copy_(torch.from_numpy(dense['bias:0']))


def load_model(args):
    model = Path(args.model)
    spec = json.loads(model.with_suffix('.json').read_text())
    net = KidneyStoneNet(spec.get('source', {}).get('args', {}).get('pooling', 'mean'))
    checkpoint = Path(args.checkpoint) if args.checkpoint else model.with_suffix('.pt')
    if checkpoint.exists() or args.checkpoint:
        state = torch.load(checkpoint, map_location='cpu')
        net.load_state_dict(state.get('state_dict', state) if isinstance(state, dict) else state)
    else:
        load_keras_h5(net, model.with_suffix('.h5'))
    return net.eval(), spec


def to_tensor(image, spec):
    """PIL path of the old app: greyscale, aspect kept with black padding (the sidecar's 'contain'), normalise."""
    size = (spec['input']['width'], spec['input']['height'])
    grey = ImageOps.exif_transpose(image).convert('L')
    if spec['input']['resize'] == 'contain':
        grey = ImageOps.pad(grey, size, method=Image.BILINEAR, color=0)
    else:
        grey = grey.resize(size, Image.BILINEAR)
    pixels = np.asarray(grey, dtype=np.float32) * spec['input']['scale']
    pixels = (pixels - spec['input']['mean'][0]) / spec['input']['std'][0]
    return torch.from_numpy(pixels)[None, None]


def create_app(net, spec, upload_dir):
    app = Flask(__name__)
    positive = spec['classes'].index(spec['positiveClass'])

    @app.get('/health/ready')
    def ready():
        return jsonify(status='ready')

    @app.post('/predict')
    def predict():
        upload = request.files.get('file')
        if upload is None:
            return jsonify(error='no file'), 400
        data = upload.read()
        if upload_dir is not None:
            (Path(upload_dir) / f'{uuid.uuid4()}.jpg').write_bytes(data)
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except Exception:
            return jsonify(error='corrupt image'), 422
        with torch.no_grad():
            logits = net(to_tensor(image, spec))[0][0]
        probabilities = torch.softmax(logits / spec['temperature'], 0).tolist()
        index = positive if probabilities[positive] >= spec['threshold'] else 1 - positive
        return jsonify(prediction=spec['classes'][index], classIndex=index, confidence=probabilities[index],
                       probabilities=dict(zip(spec['classes'], probabilities)))

    return app


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    net, spec = load_model(args)
    if args.upload_dir is not None:
        os.makedirs(args.upload_dir, exist_ok=True)
    # Flask's own threaded server, as the old app ran (app.run); one model shared by the request threads.
    create_app(net, spec, args.upload_dir).run(host=args.host, port=args.port, threaded=True)


if __name__ == '__main__':
    main()
