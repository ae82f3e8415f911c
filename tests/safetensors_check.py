#!/usr/bin/env python3
"""Independent check that a file octet wrote is plain safetensors.

Parses the header with json and the data with numpy.frombuffer (no octet code, no safetensors
package), checks that the tensors tile the data buffer and the octet.crc32 checksum, and prints
every tensor. If the safetensors package is importable, also loads the file with
safetensors.numpy.load_file and compares. Not run by the test suite (numpy is optional).

    /usr/bin/python3 tests/safetensors_check.py model.safetensors
"""
import json
import struct
import sys
import zlib

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
          "I8": "i1", "U8": "u1", "BF16": "<u2"}  # BF16 shown as raw 16-bit words


def main(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    print(f"{path}: header {n} bytes, data {len(data)} bytes, {len(header)} tensors")
    for k, v in meta.items():
        print(f"  meta {k} = {v!r}")
    if "octet.crc32" in meta:
        crc = "%08x" % zlib.crc32(data)
        assert crc == meta["octet.crc32"], f"crc32 {crc} != {meta['octet.crc32']}"
        print(f"  crc32 {crc} matches")
    at = 0
    arrays = {}
    for name, e in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        begin, end = e["data_offsets"]
        assert begin == at, f"{name}: hole or overlap at {begin}, expected {at}"
        at = end
        a = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
        arrays[name] = a
        print(f"  {name} {e['dtype']} {list(a.shape)} = {a.tolist()}")
    assert at == len(data), f"{len(data) - at} trailing bytes"
    try:
        from safetensors.numpy import load_file
    except ImportError:
        print("safetensors package not installed: skipped load_file")
        return
    loaded = load_file(path)
    for name, a in arrays.items():
        if header[name]["dtype"] != "BF16":
            assert np.array_equal(loaded[name], a), name
    print(f"safetensors.numpy.load_file: {len(loaded)} tensors, all equal")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        main(p)
