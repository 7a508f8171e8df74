"""Writes the trained network as a Keras 2 HDF5 model (Sequential, channels-last) with h5py only.

Layout as Keras 2.11 saves it: root attrs `model_config` / `keras_version` / `backend`, weights under
`model_weights/<layer>/<layer>/<weight>:0` with HWIO conv kernels, BatchNorm gamma/beta/moving_mean/
moving_variance and Dense kernels [in, out].
"""
import json

import h5py
import numpy as np

from network import BN_EPS, LAYERS, CLASSES

KERAS_VERSION = '2.11.0'


def _initializer(name):
    return {'class_name': name, 'config': {'seed': None} if name == 'GlorotUniform' else {}}


def _base(name):
    return {'name': name, 'trainable': True, 'dtype': 'float32'}


def _conv(name, filters, kernel, stride, padding):
    return {'class_name': 'Conv2D', 'config': {
        **_base(name), 'filters': filters, 'kernel_size': [kernel, kernel], 'strides': [stride, stride],
        'padding': padding, 'data_format': 'channels_last', 'dilation_rate': [1, 1], 'groups': 1,
        'activation': 'linear', 'use_bias': False, 'kernel_initializer': _initializer('GlorotUniform'),
        'bias_initializer': _initializer('Zeros'), 'kernel_regularizer': None, 'bias_regularizer': None,
        'activity_regularizer': None, 'kernel_constraint': None, 'bias_constraint': None}}


def _batch_norm(name, momentum):
    return {'class_name': 'BatchNormalization', 'config': {
        **_base(name), 'axis': [3], 'momentum': momentum, 'epsilon': BN_EPS, 'center': True, 'scale': True,
        'beta_initializer': _initializer('Zeros'), 'gamma_initializer': _initializer('Ones'),
        'moving_mean_initializer': _initializer('Zeros'), 'moving_variance_initializer': _initializer('Ones'),
        'beta_regularizer': None, 'gamma_regularizer': None, 'beta_constraint': None, 'gamma_constraint': None}}


def _counter():
    seen = {}

    def name(base):
        k = seen.get(base, 0)
        seen[base] = k + 1
        return base if k == 0 else f'{base}_{k}'
    return name


def write_keras_h5(model, path, input_size):
    """model: a trained KidneyStoneNet (eval mode). Returns the list of Keras layer names."""
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    name = _counter()
    layers = [{'class_name': 'InputLayer', 'config': {
        'batch_input_shape': [None, input_size, input_size, 1], 'dtype': 'float32', 'sparse': False,
        'ragged': False, 'name': 'input'}}]
    weights = []  # (layer name, [(weight name, array)])
    torch_index = 0  # position in model.features
    for spec in LAYERS:
        if spec[0] == 'pool':
            n = name('max_pooling2d')
            layers.append({'class_name': 'MaxPooling2D', 'config': {
                **_base(n), 'pool_size': [2, 2], 'padding': 'valid', 'strides': [2, 2], 'data_format': 'channels_last'}})
            weights.append((n, []))
            torch_index += 1
            continue
        _, filters, kernel, stride = spec
        conv, bn = f'features.{torch_index}', f'features.{torch_index + 1}'
        n = name('conv2d')
        layers.append(_conv(n, filters, kernel, stride, 'valid' if stride == kernel else 'same'))
        weights.append((n, [('kernel:0', sd[conv + '.weight'].transpose(2, 3, 1, 0))]))  # OIHW -> HWIO
        n = name('batch_normalization')
        momentum = 1.0 - model.features[torch_index + 1].momentum
        layers.append(_batch_norm(n, momentum))
        weights.append((n, [('gamma:0', sd[bn + '.weight']), ('beta:0', sd[bn + '.bias']),
                            ('moving_mean:0', sd[bn + '.running_mean']),
                            ('moving_variance:0', sd[bn + '.running_var'])]))
        n = name('activation')
        layers.append({'class_name': 'Activation', 'config': {**_base(n), 'activation': 'relu'}})
        weights.append((n, []))
        torch_index += 3
    n = name('global_average_pooling2d')
    layers.append({'class_name': 'GlobalAveragePooling2D', 'config': {
        **_base(n), 'data_format': 'channels_last', 'keepdims': False}})
    weights.append((n, []))
    n = name('dense')
    layers.append({'class_name': 'Dense', 'config': {
        **_base(n), 'units': len(CLASSES), 'activation': 'linear', 'use_bias': True,
        'kernel_initializer': _initializer('GlorotUniform'), 'bias_initializer': _initializer('Zeros'),
        'kernel_regularizer': None, 'bias_regularizer': None, 'activity_regularizer': None,
        'kernel_constraint': None, 'bias_constraint': None}})
    weights.append((n, [('kernel:0', sd['head.weight'].T.copy()), ('bias:0', sd['head.bias'])]))

    config = {'class_name': 'Sequential', 'config': {'name': 'kidney_stone_cnn', 'layers': layers}}
    str_array = h5py.special_dtype(vlen=str)
    with h5py.File(path, 'w') as f:
        f.attrs['backend'] = 'tensorflow'
        f.attrs['keras_version'] = KERAS_VERSION
        f.attrs['model_config'] = json.dumps(config)
        group = f.create_group('model_weights')
        group.attrs['backend'] = 'tensorflow'
        group.attrs['keras_version'] = KERAS_VERSION
        group.attrs['layer_names'] = np.array([n for n, _ in weights], dtype=object).astype(str_array)
        for layer_name, arrays in weights:
            g = group.create_group(layer_name)
            g.attrs['weight_names'] = np.array([f'{layer_name}/{w}' for w, _ in arrays], dtype=object).astype(str_array) \
                if arrays else np.array([], dtype=np.float64)
            for w, a in arrays:
                g.create_dataset(f'{layer_name}/{w}', data=np.ascontiguousarray(a, dtype=np.float32))
    return [n for n, _ in weights]


def keras_reference_forward(path, x_nhwc):
    """Runs the saved HDF5 file with numpy (channels-last), to prove it is the same network as PyTorch."""
    with h5py.File(path, 'r') as f:
        layers = json.loads(f.attrs['model_config'])['config']['layers'][1:]
        w = f['model_weights']
        h = x_nhwc.astype(np.float64)
        for layer in layers:
            cls, cfg = layer['class_name'], layer['config']
            g = w[cfg['name']][cfg['name']] if cfg['name'] in w and len(w[cfg['name']].keys()) else None
            if cls == 'Conv2D':
                h = _conv_nhwc(h, g['kernel:0'][()].astype(np.float64), cfg['strides'][0], cfg['padding'])
            elif cls == 'BatchNormalization':
                h = (h - g['moving_mean:0'][()]) / np.sqrt(g['moving_variance:0'][()] + cfg['epsilon']) \
                    * g['gamma:0'][()] + g['beta:0'][()]
            elif cls == 'Activation':
                h = np.maximum(h, 0)
            elif cls == 'MaxPooling2D':
                n, hh, ww, c = h.shape
                h = h[:, :hh // 2 * 2, :ww // 2 * 2].reshape(n, hh // 2, 2, ww // 2, 2, c).max(axis=(2, 4))
            elif cls == 'GlobalAveragePooling2D':
                h = h.mean(axis=(1, 2))
            elif cls == 'Dense':
                h = h @ g['kernel:0'][()] + g['bias:0'][()]
            else:
                raise ValueError(cls)
    return h


def _conv_nhwc(x, k, stride, padding):
    kh, kw, _, out = k.shape
    if padding == 'same':
        x = np.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    n, hh, ww, c = x.shape
    oh, ow = (hh - kh) // stride + 1, (ww - kw) // stride + 1
    y = np.zeros((n, oh, ow, out))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride]
            y += patch @ k[i, j]
    return y
