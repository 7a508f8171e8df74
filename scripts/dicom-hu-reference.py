#!/usr/bin/python3
"""Independent HU reference for the DICOM tests: walks the Part 10 data elements with the standard library only
(no pydicom, no dicom-parser), applies HU = stored value x RescaleSlope + RescaleIntercept, and prints JSON with
the image attributes, whole-image statistics and the HU of a 16x16 grid of pixels for every uncompressed file.

Usage: /usr/bin/python3 scripts/dicom-hu-reference.py ../shared/data/dicom > test/fixtures/dicom/hu-reference.json
"""
import json
import os
import struct
import sys

LONG_VRS = {b'OB', b'OD', b'OF', b'OL', b'OV', b'OW', b'SQ', b'SV', b'UC', b'UN', b'UR', b'UT', b'UV'}
UNCOMPRESSED = {'1.2.840.10008.1.2': ('<', False), '1.2.840.10008.1.2.1': ('<', True), '1.2.840.10008.1.2.2': ('>', True)}
UNDEFINED = 0xFFFFFFFF


def read_element(data, pos, endian, explicit):
    group, elem = struct.unpack_from(endian + 'HH', data, pos)
    pos += 4
    if group == 0xFFFE:  # item / delimiters never carry a VR
        return group, elem, None, struct.unpack_from(endian + 'I', data, pos)[0], pos + 4
    if explicit:
        vr = data[pos:pos + 2]
        if vr in LONG_VRS:
            return group, elem, vr, struct.unpack_from(endian + 'I', data, pos + 4)[0], pos + 8
        return group, elem, vr, struct.unpack_from(endian + 'H', data, pos + 2)[0], pos + 4
    return group, elem, None, struct.unpack_from(endian + 'I', data, pos)[0], pos + 4


def skip_undefined(data, pos, endian, explicit):
    """Skips nested items of an undefined-length value up to and past its Sequence Delimitation Item."""
    while True:
        group, elem, _, length, pos = read_element(data, pos, endian, explicit)
        if (group, elem) == (0xFFFE, 0xE0DD):
            return pos
        if (group, elem) == (0xFFFE, 0xE000):
            if length == UNDEFINED:
                pos = walk(data, pos, endian, explicit, {}, stop_at_item_end=True)
            else:
                pos += length
        elif length == UNDEFINED:
            pos = skip_undefined(data, pos, endian, explicit)
        else:
            pos += length


def walk(data, pos, endian, explicit, found, stop_at_item_end=False, end=None):
    end = len(data) if end is None else end
    while pos < end:
        group, elem, vr, length, pos = read_element(data, pos, endian, explicit)
        if stop_at_item_end and (group, elem) == (0xFFFE, 0xE00D):
            return pos
        if length == UNDEFINED:
            pos = skip_undefined(data, pos, endian, explicit)
            continue
        if not stop_at_item_end:
            found[(group, elem)] = (pos, length)
        pos += length
    return pos


def main(folder):
    out = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith('.dcm'):
            continue
        data = open(os.path.join(folder, name), 'rb').read()
        assert data[128:132] == b'DICM', name
        meta = {}
        walk(data, 132, '<', True, meta)
        # (0002,0000) gives the meta group length; the data set starts right after it.
        group_len_pos, _ = meta[(0x0002, 0x0000)]
        body = group_len_pos + 4 + struct.unpack_from('<I', data, group_len_pos)[0]
        ts_pos, ts_len = meta[(0x0002, 0x0010)]
        syntax = data[ts_pos:ts_pos + ts_len].rstrip(b'\0 ').decode()
        if syntax not in UNCOMPRESSED:
            continue
        endian, explicit = UNCOMPRESSED[syntax]
        found = {}
        walk(data, body, endian, explicit, found)

        def us(tag):
            p, _ = found[tag]
            return struct.unpack_from(endian + 'H', data, p)[0]

        def ds(tag, default):
            if tag not in found:
                return default
            p, n = found[tag]
            return float(data[p:p + n].decode().strip('\0 ').split('\\')[0])

        def ui(tag):
            p, n = found[tag]
            return data[p:p + n].rstrip(b'\0 ').decode()

        rows, cols = us((0x0028, 0x0010)), us((0x0028, 0x0011))
        bits, signed = us((0x0028, 0x0100)), us((0x0028, 0x0103)) == 1
        slope, intercept = ds((0x0028, 0x1053), 1.0), ds((0x0028, 0x1052), 0.0)
        pixel_pos, _ = found[(0x7FE0, 0x0010)]
        fmt = {(8, False): 'B', (8, True): 'b', (16, False): 'H', (16, True): 'h'}[(bits, signed)]
        stored = struct.unpack_from(endian + fmt * (rows * cols), data, pixel_pos)
        hu = [v * slope + intercept for v in stored]
        step_y, step_x = rows // 16, cols // 16
        out[name] = {
            'transferSyntaxUid': syntax, 'rows': rows, 'columns': cols, 'bitsAllocated': bits, 'signed': signed,
            'rescaleSlope': slope, 'rescaleIntercept': intercept,
            'studyInstanceUid': ui((0x0020, 0x000D)), 'seriesInstanceUid': ui((0x0020, 0x000E)),
            'sopInstanceUid': ui((0x0008, 0x0018)),
            'min': min(hu), 'max': max(hu), 'sum': sum(hu),
            'samples': [{'x': x, 'y': y, 'hu': hu[y * cols + x]}
                        for y in range(step_y // 2, rows, step_y) for x in range(step_x // 2, cols, step_x)],
        }
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == '__main__':
    main(sys.argv[1])
