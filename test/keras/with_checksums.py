#!/usr/bin/python3
"""Copies a Keras .h5 into an HDF5 file that carries checksums: the latest file format (superblock and object
headers with Jenkins lookup3 checksums) and the Fletcher-32 filter on every dataset. Same groups, datasets,
attributes and values: only the integrity data is new.

    /usr/bin/python3 test/keras/with_checksums.py IN.h5 OUT.h5
"""
import sys

import h5py


def copy_attributes(source, target):
    for name, value in source.attrs.items():
        target.attrs[name] = value


def copy_group(source, target):
    copy_attributes(source, target)
    for name, item in source.items():
        if isinstance(item, h5py.Group):
            copy_group(item, target.create_group(name))
        else:
            data = item[()]
            chunks = item.shape if item.shape != () else None
            dataset = target.create_dataset(name, data=data, chunks=chunks, fletcher32=chunks is not None)
            copy_attributes(item, dataset)


with h5py.File(sys.argv[1], 'r') as source, h5py.File(sys.argv[2], 'w', libver='latest') as target:
    copy_group(source, target)
