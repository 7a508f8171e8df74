#!/usr/bin/python3
"""Writes small Keras models with seeded random weights, the way Keras stores them, without TensorFlow:

- functional-k2.h5: a Functional model with Add / Multiply / Concatenate branches, a shared layer called
  twice and every layer class the converter supports, in the Keras 2 `model.save('x.h5')` layout
  (config in root attributes, weights under model_weights/<layer>/<layer>/<weight>:0).
- functional-k3.keras: the same graph as a Keras 3 `.keras` zip (config.json with __keras_tensor__ call
  arguments, metadata.json, model.weights.h5 with layers/<snake_case class>[_n]/vars/<i>).
- multi-output-k2.h5 / multi-output-k3.keras: a Functional model with four outputs (Dense logits, Permute'd
  activation maps), in both layouts.
- unsupported-layer.h5: a Sequential model with an UpSampling2D layer, which the converter must refuse.
- sequential-k3.keras (with a second argument, a Keras 3 .h5): that Sequential model as a .keras archive.

    /usr/bin/python3 test/keras/build_functional.py OUT_DIR [KERAS3_MODEL.h5]
"""
import io
import json
import os
import sys
import zipfile

import h5py
import numpy as np

from reference import snake_case, variable_names

RNG = np.random.default_rng(20240611)

# name, class, config, inputs as (layer, call index); the first entry is the input.
LAYERS = [
    ("input_1", "InputLayer", {"batch_shape": [None, 16, 16, 3]}, []),
    ("rescale", "Rescaling", {"scale": 2.0, "offset": -1.0}, [("input_1", 0)]),
    ("pad", "ZeroPadding2D", {"padding": [[1, 0], [2, 1]]}, [("rescale", 0)]),
    ("stem", "Conv2D", {"filters": 8, "kernel_size": [3, 3], "strides": [2, 2], "padding": "same", "use_bias": False,
                        "activation": "elu"}, [("pad", 0)]),
    ("dilated", "Conv2D", {"filters": 8, "kernel_size": [3, 3], "padding": "same", "dilation_rate": [2, 2],
                           "activation": "selu"}, [("stem", 0)]),
    ("depthwise", "DepthwiseConv2D", {"kernel_size": [3, 3], "padding": "same", "depth_multiplier": 2,
                                      "activation": "gelu"}, [("stem", 0)]),
    ("project", "Conv2D", {"filters": 8, "kernel_size": [1, 1], "activation": "swish"}, [("depthwise", 0)]),
    ("sum", "Add", {}, [("stem", 0), ("dilated", 0), ("project", 0)]),
    ("norm", "BatchNormalization", {"axis": -1, "epsilon": 0.001}, [("sum", 0)]),
    ("relu6", "ReLU", {"max_value": 6.0}, [("norm", 0)]),
    ("gate", "Activation", {"activation": "hard_sigmoid"}, [("norm", 0)]),
    ("gated", "Multiply", {}, [("relu6", 0), ("gate", 0)]),
    ("separable", "SeparableConv2D", {"filters": 12, "kernel_size": [3, 3], "padding": "valid",
                                      "activation": "tanh"}, [("gated", 0)]),
    ("leaky", "LeakyReLU", {"alpha": 0.1, "negative_slope": 0.1}, [("separable", 0)]),
    ("avg", "AveragePooling2D", {"pool_size": [2, 2], "strides": [1, 1], "padding": "same"}, [("leaky", 0)]),
    ("channels", "Concatenate", {"axis": -1}, [("leaky", 0), ("avg", 0)]),
    ("halve", "MaxPooling2D", {"pool_size": [1, 2], "strides": [1, 2], "padding": "valid"}, [("channels", 0)]),
    ("widen", "Concatenate", {"axis": 2}, [("channels", 0), ("halve", 0)]),
    ("gmax", "GlobalMaxPooling2D", {}, [("widen", 0)]),
    ("gavg", "GlobalAveragePooling2D", {}, [("widen", 0)]),
    ("shifted", "ReLU", {"negative_slope": 0.1, "threshold": 0.05}, [("gavg", 0)]),
    ("shared", "Dense", {"units": 24, "activation": "linear"}, [("gmax", 0)]),
    ("pool", "MaxPooling2D", {"pool_size": [2, 2], "padding": "valid"}, [("widen", 0)]),
    ("flat", "Flatten", {}, [("pool", 0)]),
    ("rows", "Reshape", {"target_shape": [12, -1]}, [("flat", 0)]),
    ("per_row", "Dense", {"units": 5, "activation": "softplus"}, [("rows", 0)]),
    ("flat_rows", "Flatten", {}, [("per_row", 0)]),
    ("both", "Add", {}, [("shared", 0), ("shared", 1)]),
    ("features", "Concatenate", {}, [("both", 0), ("flat_rows", 0)]),
    ("hidden", "Dense", {"units": 16, "activation": "relu"}, [("features", 0)]),
    ("drop", "Dropout", {"rate": 0.5}, [("hidden", 0)]),
    ("out", "Dense", {"units": 3, "activation": "linear"}, [("drop", 0)]),
]
# The shared Dense is called a second time, on another branch.
SECOND_CALLS = {"shared": [("shifted", 0)]}


def weight_shapes(cls, cfg, in_channels):
    """Shapes of each variable, given the channel count of the layer's input."""
    k = cfg.get("kernel_size", [1, 1])
    if cls == "Conv2D":
        return {"kernel": [k[0], k[1], in_channels, cfg["filters"]], "bias": [cfg["filters"]]}
    if cls == "DepthwiseConv2D":
        m = cfg["depth_multiplier"]
        return {"depthwise_kernel": [k[0], k[1], in_channels, m], "bias": [in_channels * m]}
    if cls == "SeparableConv2D":
        return {"depthwise_kernel": [k[0], k[1], in_channels, 1],
                "pointwise_kernel": [1, 1, in_channels, cfg["filters"]], "bias": [cfg["filters"]]}
    if cls == "Dense":
        return {"kernel": [in_channels, cfg["units"]], "bias": [cfg["units"]]}
    if cls == "BatchNormalization":
        return {n: [in_channels] for n in ("gamma", "beta", "moving_mean", "moving_variance")}
    return {}


# Channel count entering each weighted layer (checked by the converter's own shape errors if wrong).
IN_CHANNELS = {"stem": 3, "dilated": 8, "depthwise": 8, "project": 16, "norm": 8, "separable": 8,
               "shared": 24, "per_row": 36, "hidden": 84, "out": 16}

# Several outputs, listed in another order than the layers, like the project's model (logits + activation
# maps): Permute on a convolution output (channels first for free, or a real transpose) and on a permuted one.
MULTI_OUTPUT_LAYERS = [
    ("image", "InputLayer", {"batch_shape": [None, 12, 10, 3]}, []),
    ("conv", "Conv2D", {"filters": 6, "kernel_size": [3, 3], "padding": "same", "use_bias": False,
                        "activation": "relu"}, [("image", 0)]),
    ("norm", "BatchNormalization", {"axis": -1, "epsilon": 0.001}, [("conv", 0)]),
    ("gap", "GlobalAveragePooling2D", {}, [("norm", 0)]),
    ("logits", "Dense", {"units": 2, "activation": "linear"}, [("gap", 0)]),
    ("cam_conv", "Conv2D", {"filters": 2, "kernel_size": [1, 1], "activation": "linear"}, [("norm", 0)]),
    ("cam", "Permute", {"dims": [3, 1, 2]}, [("cam_conv", 0)]),
    ("swapped", "Permute", {"dims": [2, 1, 3]}, [("cam_conv", 0)]),
    ("back", "Permute", {"dims": [2, 3, 1]}, [("cam", 0)]),
]
MULTI_OUTPUT_IN_CHANNELS = {"conv": 3, "norm": 6, "logits": 6, "cam_conv": 6}
MULTI_OUTPUTS = ["logits", "back", "cam", "swapped"]


def make_weights(layers=LAYERS, in_channels=IN_CHANNELS):
    weights = {}
    for name, cls, cfg, _ in layers:
        shapes = weight_shapes(cls, cfg, in_channels.get(name, 0))
        values = {}
        for short in variable_names(cls, cfg):
            shape = shapes[short]
            if short == "moving_variance":
                values[short] = RNG.uniform(0.5, 1.5, shape)
            elif short == "gamma":
                values[short] = RNG.uniform(0.5, 1.5, shape)
            else:
                fan_in = int(np.prod(shape[:-1])) or 1
                values[short] = RNG.normal(0, 1 / np.sqrt(fan_in), shape)
            values[short] = values[short].astype(np.float32)
        weights[name] = values
    return weights


def layer_config(name, cls, cfg, keras3):
    config = dict(cfg, name=name, trainable=True, dtype="float32")
    if cls == "LeakyReLU":
        config.pop("negative_slope" if not keras3 else "alpha")
    if cls == "InputLayer" and not keras3:
        config["batch_input_shape"] = config.pop("batch_shape")
    return config


def keras2_model(weights, path, model_layers=LAYERS, second_calls=SECOND_CALLS, outputs=("out",)):
    layers = []
    for name, cls, cfg, inputs in model_layers:
        calls = [inputs] + [[c] for c in second_calls.get(name, [])]
        nodes = [[[src, node, 0, {}] for src, node in call] for call in calls] if inputs else []
        layers.append({"class_name": cls, "config": layer_config(name, cls, cfg, False), "name": name, "inbound_nodes": nodes})
    config = {"class_name": "Functional", "config": {"name": "functional_test", "layers": layers,
                                                     "input_layers": [[model_layers[0][0], 0, 0]],
                                                     "output_layers": [[name, 0, 0] for name in outputs]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.11.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = np.array([n.encode() for n, *_ in model_layers])
        for name, values in weights.items():
            layer = group.create_group(name)
            layer.attrs["weight_names"] = np.array([("%s/%s:0" % (name, short)).encode() for short in values])
            for short, value in values.items():
                layer.create_dataset("%s/%s:0" % (name, short), data=value)


def keras_tensor(src, node):
    return {"class_name": "__keras_tensor__", "config": {"shape": None, "dtype": "float32", "keras_history": [src, node, 0]}}


def keras3_model(weights, path, model_layers=LAYERS, second_calls=SECOND_CALLS, outputs=("out",)):
    layers = []
    for name, cls, cfg, inputs in model_layers:
        calls = [inputs] + [[c] for c in second_calls.get(name, [])]
        nodes = []
        for call in (calls if inputs else []):
            tensors = [keras_tensor(src, node) for src, node in call]
            nodes.append({"args": [tensors] if len(tensors) > 1 else tensors, "kwargs": {}})
        layers.append({"module": "keras.layers", "class_name": cls, "config": layer_config(name, cls, cfg, True),
                       "registered_name": None, "name": name, "inbound_nodes": nodes})
    config = {"module": "keras", "class_name": "Functional", "registered_name": "Functional",
              "config": {"name": "functional_test", "trainable": True, "layers": layers,
                         "input_layers": [[model_layers[0][0], 0, 0]],
                         "output_layers": [[name, 0, 0] for name in outputs]}}
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        counts = {}
        for name, cls, _, _ in model_layers:
            base = snake_case(cls)
            n = counts.get(base, -1) + 1
            counts[base] = n
            group = f.create_group("layers/%s/vars" % (base if n == 0 else "%s_%d" % (base, n)))
            for i, value in enumerate(weights[name].values()):
                group.create_dataset(str(i), data=value)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.8.0", "date_saved": "2024-06-11@00:00:00"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", buffer.getvalue())


def unsupported_model(path):
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 1], "name": "input"}},
        {"class_name": "UpSampling2D", "config": {"name": "up_sampling2d", "size": [2, 2]}},
    ]}}
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.11.0"
        f.attrs["model_config"] = json.dumps(config)
        f.create_group("model_weights").attrs["layer_names"] = np.array([b"up_sampling2d"])


def keras3_archive_from_h5(h5_path, path):
    """Re-saves a Keras 3 legacy .h5 (Sequential) as a .keras archive: same config, weights by class slot."""
    with h5py.File(h5_path, "r") as source:
        config = json.loads(source.attrs["model_config"])
        version = str(source.attrs["keras_version"])
        buffer = io.BytesIO()
        with h5py.File(buffer, "w") as f:
            counts = {}
            for layer in config["config"]["layers"]:
                base = snake_case(layer["class_name"])
                n = counts.get(base, -1) + 1
                counts[base] = n
                group = f.create_group("layers/%s/vars" % (base if n == 0 else "%s_%d" % (base, n)))
                stored = source["model_weights"].get(layer["config"]["name"])
                names = [] if stored is None else [x.decode() if isinstance(x, bytes) else x for x in stored.attrs["weight_names"]]
                by_short = {name.split("/")[-1].split(":")[0]: stored[name][()] for name in names}
                for i, short in enumerate(variable_names(layer["class_name"], layer["config"])):
                    group.create_dataset(str(i), data=by_short[short])
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": version}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", buffer.getvalue())


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    weights = make_weights()
    keras2_model(weights, os.path.join(out_dir, "functional-k2.h5"))
    keras3_model(weights, os.path.join(out_dir, "functional-k3.keras"))
    unsupported_model(os.path.join(out_dir, "unsupported-layer.h5"))
    multi = (MULTI_OUTPUT_LAYERS, {}, MULTI_OUTPUTS)
    multi_weights = make_weights(MULTI_OUTPUT_LAYERS, MULTI_OUTPUT_IN_CHANNELS)
    keras2_model(multi_weights, os.path.join(out_dir, "multi-output-k2.h5"), *multi)
    keras3_model(multi_weights, os.path.join(out_dir, "multi-output-k3.keras"), *multi)
    if len(sys.argv) > 2:
        keras3_archive_from_h5(sys.argv[2], os.path.join(out_dir, "sequential-k3.keras"))


if __name__ == "__main__":
    main()
