"""The old architecture, for the benchmark: Flask + the framework's own per-request predict.

One request = one upload saved to disk, PIL decode, resize, normalise, one PyTorch forward pass, JSON. The network
class is imported from the training pipeline (model/training/network.py) and loaded from the state dict it writes
next to the ONNX model (model/kidney-stone-cnn.pt); input size, scaling, temperature and threshold come from the
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


def load_model(args):
    model = Path(args.model)
    spec = json.loads(model.with_suffix('.json').read_text())
    state = torch.load(args.checkpoint or model.with_suffix('.pt'), map_location='cpu')
    net = KidneyStoneNet()
    net.load_state_dict(state.get('state_dict', state) if isinstance(state, dict) else state)
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
