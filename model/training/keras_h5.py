"""Writes the trained network as a Keras 2 HDF5 model (Functional, channels-last, outputs `logits` and `cam`)
with h5py only; test/keras/reference.py runs it in NumPy and the project's converter turns it into the ONNX.

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
    return {
        **_base(name), 'filters': filters, 'kernel_size': [kernel, kernel], 'strides': [stride, stride],
        'padding': padding, 'data_format': 'channels_last', 'dilation_rate': [1, 1], 'groups': 1,
        'activation': 'linear', 'use_bias': False, 'kernel_initializer': _initializer('GlorotUniform'),
        'bias_initializer': _initializer('Zeros'), 'kernel_regularizer': None, 'bias_regularizer': None,
        'activity_regularizer': None, 'kernel_constraint': None, 'bias_constraint': None}


def _batch_norm(name, momentum):
    return {
        **_base(name), 'axis': [3], 'momentum': momentum, 'epsilon': BN_EPS, 'center': True, 'scale': True,
        'beta_initializer': _initializer('Zeros'), 'gamma_initializer': _initializer('Ones'),
        'moving_mean_initializer': _initializer('Zeros'), 'moving_variance_initializer': _initializer('Ones'),
        'beta_regularizer': None, 'gamma_regularizer': None, 'beta_constraint': None, 'gamma_constraint': None}


def _counter():
    seen = {}

    def name(base):
        k = seen.get(base, 0)
        seen[base] = k + 1
        return base if k == 0 else f'{base}_{k}'
    return name


def _layer(class_name, config, inbound):
    """A Functional-model layer entry, called once on the named layers' outputs (Keras 2 inbound_nodes)."""
    return {'class_name': class_name, 'config': config, 'name': config['name'],
            'inbound_nodes': [[[name, 0, 0, {}] for name in inbound]] if inbound else []}


def write_keras_h5(model, path, input_size):
    """model: a trained KidneyStoneNet (eval mode). Returns the list of Keras layer names.

    Two outputs, like the PyTorch network: `logits` and `cam`, permuted to channels-first [N,2,h,w]. Mean pooling:
    logits = global average pooling + Dense, cam = the same Dense applied at every location as a 1x1 Conv2D. Max
    pooling: a 1x1 Conv2D gives the evidence map e, logits = Dense [-1/2, 1/2] of its global max, cam = that
    Dense applied at every location of e.
    """
    sd = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    name = _counter()
    layers = [_layer('InputLayer', {
        'batch_input_shape': [None, input_size, input_size, 1], 'dtype': 'float32', 'sparse': False,
        'ragged': False, 'name': 'input'}, [])]
    weights = [('input', [])]  # (layer name, [(weight name, array)])

    def add(class_name, config, arrays=(), inbound=None):
        layers.append(_layer(class_name, config, [layers[-1]['name']] if inbound is None else inbound))
        weights.append((config['name'], list(arrays)))
        return config['name']

    torch_index = 0  # position in model.features
    for spec in LAYERS:
        if spec[0] == 'pool':
            add('MaxPooling2D', {**_base(name('max_pooling2d')), 'pool_size': [2, 2], 'padding': 'valid',
                                 'strides': [2, 2], 'data_format': 'channels_last'})
            torch_index += 1
            continue
        _, filters, kernel, stride = spec
        conv, bn = f'features.{torch_index}', f'features.{torch_index + 1}'
        add('Conv2D', _conv(name('conv2d'), filters, kernel, stride, 'valid' if stride == kernel else 'same'),
            [('kernel:0', sd[conv + '.weight'].transpose(2, 3, 1, 0))])  # OIHW -> HWIO
        momentum = 1.0 - model.features[torch_index + 1].momentum
        add('BatchNormalization', _batch_norm(name('batch_normalization'), momentum),
            [('gamma:0', sd[bn + '.weight']), ('beta:0', sd[bn + '.bias']),
             ('moving_mean:0', sd[bn + '.running_mean']), ('moving_variance:0', sd[bn + '.running_var'])])
        add('Activation', {**_base(name('activation')), 'activation': 'relu'})
        torch_index += 3
    features = layers[-1]['name']
    dense = {'units': len(CLASSES), 'activation': 'linear', 'use_bias': True,
             'kernel_initializer': _initializer('GlorotUniform'), 'bias_initializer': _initializer('Zeros'),
             'kernel_regularizer': None, 'bias_regularizer': None, 'activity_regularizer': None,
             'kernel_constraint': None, 'bias_constraint': None}
    head_kernel, head_bias = sd['head.weight'].T.copy(), sd['head.bias']  # [features, outputs]
    if model.pooling == 'mean':
        add('GlobalAveragePooling2D', {**_base(name('global_average_pooling2d')), 'data_format': 'channels_last',
                                       'keepdims': False})
        add('Dense', {**_base('logits'), **dense}, [('kernel:0', head_kernel), ('bias:0', head_bias)])
        cam_conv = {**_conv('cam_conv', len(CLASSES), 1, 1, 'valid'), 'use_bias': True}
        add('Conv2D', cam_conv, [('kernel:0', head_kernel[None, None]), ('bias:0', head_bias)], [features])
    else:
        # evidence e (1x1 conv) -> logits = Dense([-1/2, 1/2]) of its global max; cam = the same Dense per location
        halves = np.array([[-0.5, 0.5]], dtype=np.float32)
        evidence = add('Conv2D', {**_conv('evidence', 1, 1, 1, 'valid'), 'use_bias': True},
                       [('kernel:0', head_kernel[None, None]), ('bias:0', head_bias)], [features])
        add('GlobalMaxPooling2D', {**_base(name('global_max_pooling2d')), 'data_format': 'channels_last',
                                   'keepdims': False})
        add('Dense', {**_base('logits'), **dense}, [('kernel:0', halves), ('bias:0', np.zeros(2, np.float32))])
        cam_conv = {**_conv('cam_conv', len(CLASSES), 1, 1, 'valid'), 'use_bias': True}
        add('Conv2D', cam_conv, [('kernel:0', halves[None, None]), ('bias:0', np.zeros(2, np.float32))], [evidence])
    add('Permute', {**_base('cam'), 'dims': [3, 1, 2]})

    config = {'class_name': 'Functional', 'config': {
        'name': 'kidney_stone_cnn', 'layers': layers,
        'input_layers': [['input', 0, 0]], 'output_layers': [['logits', 0, 0], ['cam', 0, 0]]}}
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
