#!/usr/bin/python3
"""Independent reference forward pass of a Keras .h5/.keras image model, in NumPy (float64).

Written apart from the TypeScript converter (inference/keras/): it reads the weights with h5py and applies
the Keras layer semantics directly in channels-last layout, with no ONNX and no TensorFlow, so that the two
implementations can check each other.

    /usr/bin/python3 test/keras/reference.py MODEL INPUTS.f32 COUNT > outputs.json

INPUTS.f32 holds COUNT float32 tensors (little-endian, batch x height x width x channels, the model's input
shape). Prints {"outputs": [[...], ...], "named": {...}}: one row per input with every output flattened and
concatenated in model order, and each output alone under its layer name ({"shape": [...], "rows": [[...], ...]}).
"""
import io
import json
import math
import re
import sys
import zipfile

import h5py
import numpy as np


def snake_case(name):
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def variable_names(class_name, config):
    """Keras's variable creation order, needed for .keras archives, which store them as vars/0, vars/1..."""
    bias = ["bias"] if config.get("use_bias", True) else []
    if class_name in ("Conv2D", "Dense"):
        return ["kernel"] + bias
    if class_name == "DepthwiseConv2D":
        return ["depthwise_kernel"] + bias
    if class_name == "SeparableConv2D":
        return ["depthwise_kernel", "pointwise_kernel"] + bias
    if class_name == "BatchNormalization":
        return ((["gamma"] if config.get("scale", True) else []) + (["beta"] if config.get("center", True) else [])
                + ["moving_mean", "moving_variance"])
    return []


class KerasFile:
    def __init__(self, path):
        with open(path, "rb") as f:
            archive = f.read(4) == b"PK\x03\x04"
        if archive:
            zf = zipfile.ZipFile(path)
            self.config = json.loads(zf.read("config.json"))
            self.version = json.loads(zf.read("metadata.json")).get("keras_version", "3")
            self.h5 = h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
            self.slots = {}
            counts = {}
            for layer in self.config["config"]["layers"]:
                base = snake_case(layer["class_name"])
                n = counts.get(base, -1) + 1
                counts[base] = n
                self.slots[layer["config"]["name"]] = base if n == 0 else "%s_%d" % (base, n)
        else:
            self.h5 = h5py.File(path, "r")
            self.config = json.loads(self.h5.attrs["model_config"])
            self.version = str(self.h5.attrs.get("keras_version", "2"))
            self.slots = None
        self.major = int(self.version.split(".")[0])

    def weights(self, name, class_name, config):
        if self.slots is not None:
            group = self.h5.get("layers/%s/vars" % self.slots[name])
            if group is None:
                return {}
            return {short: np.asarray(group[str(i)], dtype=np.float64)
                    for i, short in enumerate(variable_names(class_name, config))}
        group = self.h5["model_weights"].get(name)
        if group is None:
            return {}
        out = {}
        for full in group.attrs.get("weight_names", []):
            full = full.decode() if isinstance(full, bytes) else str(full)
            out[full.split("/")[-1].split(":")[0]] = np.asarray(group[full], dtype=np.float64)
        return out


def pair(value, default):
    if value is None:
        return (default, default)
    if isinstance(value, int):
        return (value, value)
    return (int(value[0]), int(value[1]))


def same_pads(size, kernel, stride, dilation):
    span = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return total // 2, total - total // 2


def windows(x, kernel, strides, dilations, padding, fill):
    """Yields (i, j, strided view of x) for every kernel tap, after Keras 'same'/'valid' padding."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    if padding == "same":
        top, bottom = same_pads(x.shape[1], kh, sh, dh)
        left, right = same_pads(x.shape[2], kw, sw, dw)
        x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)
    oh = (x.shape[1] - ((kh - 1) * dh + 1)) // sh + 1
    ow = (x.shape[2] - ((kw - 1) * dw + 1)) // sw + 1
    for i in range(kh):
        for j in range(kw):
            yield i, j, x[:, i * dh:i * dh + (oh - 1) * sh + 1:sh, j * dw:j * dw + (ow - 1) * sw + 1:sw, :]


def conv2d(x, kernel, cfg, groups=1):
    args = (pair(cfg.get("strides"), 1), pair(cfg.get("dilation_rate"), 1), cfg.get("padding", "valid"), 0.0)
    out = None
    cin = kernel.shape[2]
    cout = kernel.shape[3] // groups
    for i, j, patch in windows(x, kernel.shape[:2], *args):
        parts = [patch[..., g * cin:(g + 1) * cin] @ kernel[i, j][:, g * cout:(g + 1) * cout] for g in range(groups)]
        term = np.concatenate(parts, axis=-1)
        out = term if out is None else out + term
    return out


def depthwise(x, kernel, cfg):
    args = (pair(cfg.get("strides"), 1), pair(cfg.get("dilation_rate"), 1), cfg.get("padding", "valid"), 0.0)
    out = None
    for i, j, patch in windows(x, kernel.shape[:2], *args):
        term = patch[..., :, None] * kernel[i, j]
        out = term if out is None else out + term
    return out.reshape(out.shape[0], out.shape[1], out.shape[2], -1)


def pool(x, cfg, kind):
    size = pair(cfg.get("pool_size"), 2)
    strides = size if cfg.get("strides") is None else pair(cfg["strides"], 1)
    padding = cfg.get("padding", "valid")
    if kind == "max":
        out = None
        for _, _, patch in windows(x, size, strides, (1, 1), padding, -np.inf):
            out = patch.copy() if out is None else np.maximum(out, patch)
        return out
    # Keras averages over the real pixels of each window only.
    total = sum(p for _, _, p in windows(x, size, strides, (1, 1), padding, 0.0))
    count = sum(p for _, _, p in windows(np.ones_like(x[:1, :, :, :1]), size, strides, (1, 1), padding, 0.0))
    return total / count


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def activation(x, name, major):
    if isinstance(name, dict):
        name = name.get("config")
    if name in (None, "linear"):
        return x
    if name == "relu":
        return np.maximum(x, 0)
    if name == "sigmoid":
        return sigmoid(x)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    if name == "tanh":
        return np.tanh(x)
    if name == "elu":
        return np.where(x > 0, x, np.expm1(x))
    if name == "selu":
        alpha, scale = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
        return scale * np.where(x > 0, x, alpha * np.expm1(x))
    if name == "gelu":
        return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    if name in ("swish", "silu"):
        return x * sigmoid(x)
    if name == "softplus":
        return np.logaddexp(0, x)
    if name == "hard_sigmoid":
        slope = 1 / 6 if major >= 3 else 0.2
        return np.clip(slope * x + 0.5, 0, 1)
    raise ValueError("unsupported activation %r" % name)


def apply_layer(kf, layer, inputs):
    cls, cfg = layer["class_name"], layer["config"]
    w = kf.weights(cfg["name"], cls, cfg)
    x = inputs[0]
    act = lambda y: activation(y, cfg.get("activation"), kf.major)  # noqa: E731
    if cls == "Conv2D":
        y = conv2d(x, w["kernel"], cfg, int(cfg.get("groups", 1)))
        return act(y + w["bias"] if "bias" in w else y)
    if cls == "DepthwiseConv2D":
        y = depthwise(x, w["depthwise_kernel"], cfg)
        return act(y + w["bias"] if "bias" in w else y)
    if cls == "SeparableConv2D":
        y = depthwise(x, w["depthwise_kernel"], cfg) @ w["pointwise_kernel"][0, 0]
        return act(y + w["bias"] if "bias" in w else y)
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        return pool(x, cfg, "max" if cls == "MaxPooling2D" else "avg")
    if cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        reduce = np.mean if cls == "GlobalAveragePooling2D" else np.max
        return reduce(x, axis=(1, 2), keepdims=bool(cfg.get("keepdims", False)))
    if cls == "BatchNormalization":
        gamma = w.get("gamma", 1.0)
        beta = w.get("beta", 0.0)
        return gamma * (x - w["moving_mean"]) / np.sqrt(w["moving_variance"] + cfg.get("epsilon", 1e-3)) + beta
    if cls == "Dense":
        y = x @ w["kernel"]
        return act(y + w["bias"] if "bias" in w else y)
    if cls == "Flatten":
        return x.reshape(x.shape[0], -1)
    if cls == "Reshape":
        return x.reshape((x.shape[0],) + tuple(cfg["target_shape"]))
    if cls == "Permute":
        return np.transpose(x, (0,) + tuple(cfg["dims"]))
    if cls == "Dropout":
        return x
    if cls == "Activation":
        return act(x)
    if cls == "ReLU":
        slope, threshold = cfg.get("negative_slope", 0.0) or 0.0, cfg.get("threshold", 0.0) or 0.0
        y = np.where(x >= threshold, x, slope * (x - threshold))
        return y if cfg.get("max_value") is None else np.minimum(y, cfg["max_value"])
    if cls == "LeakyReLU":
        slope = cfg.get("negative_slope", cfg.get("alpha", 0.3))
        return np.where(x >= 0, x, slope * x)
    if cls == "Add":
        return sum(inputs)
    if cls == "Multiply":
        out = inputs[0]
        for other in inputs[1:]:
            out = out * other
        return out
    if cls == "Concatenate":
        return np.concatenate(inputs, axis=cfg.get("axis", -1))
    if cls == "Rescaling":
        return x * np.asarray(cfg.get("scale", 1.0)) + np.asarray(cfg.get("offset", 0.0))
    if cls == "ZeroPadding2D":
        p = cfg.get("padding", 1)
        if isinstance(p, int):
            p = ((p, p), (p, p))
        elif isinstance(p[0], int):
            p = ((p[0], p[0]), (p[1], p[1]))
        return np.pad(x, ((0, 0), tuple(p[0]), tuple(p[1]), (0, 0)))
    raise ValueError("unsupported layer %s (%s)" % (cfg["name"], cls))


def history(arg, found):
    """Keras 3 call arguments: keras tensors nested in lists."""
    if isinstance(arg, list):
        for item in arg:
            history(item, found)
    elif isinstance(arg, dict) and arg.get("class_name") == "__keras_tensor__":
        found.append(tuple(arg["config"]["keras_history"]))
    return found


def tensor_refs(value):
    """`input_layers` / `output_layers`: one [name, node, tensor] or a list of them."""
    return [tuple(value)] if isinstance(value[0], str) else [tuple(v) for v in value]


def forward(kf, x):
    """Returns the list of model outputs, in model order."""
    model = kf.config["config"]
    layers = model["layers"]
    if kf.config["class_name"] == "Sequential":
        for layer in layers:
            if layer["class_name"] != "InputLayer":
                x = apply_layer(kf, layer, [x])
        return [x]
    tensors = {tensor_refs(model["input_layers"])[0]: x}
    for layer in layers:
        if layer["class_name"] == "InputLayer":
            continue
        for node_index, node in enumerate(layer["inbound_nodes"]):
            if isinstance(node, dict):
                refs = history(node["args"], [])
            else:
                refs = [tuple(item[:3]) for item in node]
            tensors[(layer["config"]["name"], node_index, 0)] = apply_layer(kf, layer, [tensors[tuple(r)] for r in refs])
    return [tensors[ref] for ref in tensor_refs(model["output_layers"])]


def output_names(kf):
    if kf.config["class_name"] == "Sequential":
        return [kf.config["config"]["layers"][-1]["config"]["name"]]
    return [ref[0] for ref in tensor_refs(kf.config["config"]["output_layers"])]


def input_shape(kf):
    layers = kf.config["config"]["layers"]
    first = next((l for l in layers if l["class_name"] == "InputLayer"), layers[0])["config"]
    return first.get("batch_shape") or first.get("batch_input_shape")


def main():
    model_path, inputs_path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    kf = KerasFile(model_path)
    _, h, w, c = input_shape(kf)
    x = np.fromfile(inputs_path, dtype="<f4").reshape(count, h, w, c)
    # A few images at a time keeps the float64 activations small.
    chunks = [forward(kf, x[i:i + 4].astype(np.float64)) for i in range(0, count, 4)]
    per_output = [np.concatenate([chunk[k] for chunk in chunks]) for k in range(len(chunks[0]))]
    json.dump({"outputs": np.concatenate([y.reshape(count, -1) for y in per_output], axis=1).tolist(),
               "named": {name: {"shape": list(y.shape[1:]), "rows": y.reshape(count, -1).tolist()}
                         for name, y in zip(output_names(kf), per_output)}}, sys.stdout)


if __name__ == "__main__":
    main()
