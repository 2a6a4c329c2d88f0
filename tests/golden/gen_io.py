#!/usr/bin/python3
"""Golden files for tests/test_io.cpp, and a reference reader to check files written by ouro.

    /usr/bin/python3 tests/golden/gen_io.py            writes tests/golden/io/*.safetensors
    /usr/bin/python3 tests/golden/gen_io.py check F..  validates safetensors files F.. and loads them
    /usr/bin/python3 tests/golden/gen_io.py png F..    decodes PNG files F.. with Pillow

The `safetensors` Python package is not available on this machine (Debian 12 does not package it),
so both directions are written out here with struct + json + numpy, following the reference
implementation (github.com/huggingface/safetensors, safetensors/src/tensor.rs):

* serialize(): tensors sorted by dtype alignment (descending), then by name; header = compact JSON
  with "__metadata__" first, then {"dtype", "shape", "data_offsets"} per tensor, padded with spaces
  to a multiple of 8; then the tensors' little-endian bytes in that order.
* load(): the checks of SafeTensors::read_metadata and Metadata::validate: header length <= 100 MB
  and inside the file, UTF-8 JSON object, "__metadata__" a str -> str map, every dtype known,
  tensors sorted by data_offsets tile the data section exactly (each begins where the previous
  ended, the last ends at the end of the file) and hold prod(shape) * dtype size bytes.
"""
import json
import os
import struct
import sys

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "io")

# (name, bytes, numpy dtype) in the reference's Dtype order (increasing alignment).
DTYPES = [
    ("BOOL", 1, "?"), ("U8", 1, "u1"), ("I8", 1, "i1"), ("F8_E5M2", 1, None), ("F8_E4M3", 1, None),
    ("I16", 2, "<i2"), ("U16", 2, "<u2"), ("F16", 2, "<f2"), ("BF16", 2, None), ("I32", 4, "<i4"),
    ("U32", 4, "<u4"), ("F32", 4, "<f4"), ("F64", 8, "<f8"), ("I64", 8, "<i8"), ("U64", 8, "<u8"),
]
RANK = {name: i for i, (name, _, _) in enumerate(DTYPES)}
SIZE = {name: size for name, size, _ in DTYPES}
NUMPY = {name: np_dtype for name, _, np_dtype in DTYPES}
MAX_HEADER_SIZE = 100_000_000


def serialize(tensors, metadata=None):
    """tensors: {name: (dtype name, numpy array)} -> file bytes, laid out as the reference does."""
    order = sorted(tensors, key=lambda n: (-RANK[tensors[n][0]], n.encode("utf-8")))
    header = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    data = b""
    for name in order:
        dtype, array = tensors[name]
        raw = np.ascontiguousarray(array, dtype=NUMPY[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + data


class Invalid(Exception):
    pass


UNALIGNED = []  # tensors whose data does not start at a multiple of their element size in the file


def load(path):
    """Validates `path` as the reference reader does; returns (metadata, {name: numpy array})."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise Invalid("HeaderTooSmall")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > MAX_HEADER_SIZE:
        raise Invalid("HeaderTooLarge")
    if 8 + n > len(buf):
        raise Invalid("InvalidHeaderLength")
    try:
        header = json.loads(buf[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise Invalid(f"InvalidHeaderDeserialization: {e}")
    if not isinstance(header, dict):
        raise Invalid("InvalidHeaderDeserialization: not an object")
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise Invalid("InvalidHeaderDeserialization: __metadata__ is not a str -> str map")
    infos = []
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") not in RANK:
            raise Invalid(f"InvalidHeaderDeserialization: tensor {name!r} has no known dtype")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not isinstance(shape, list) or not all(isinstance(x, int) and x >= 0 for x in shape):
            raise Invalid(f"InvalidHeaderDeserialization: tensor {name!r} shape")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(x, int) and x >= 0 for x in offsets):
            raise Invalid(f"InvalidHeaderDeserialization: tensor {name!r} data_offsets")
        infos.append((name, info))
    infos.sort(key=lambda kv: tuple(kv[1]["data_offsets"]))
    start = 0
    for name, info in infos:
        s, e = info["data_offsets"]
        if s != start or e < s:
            raise Invalid(f"InvalidOffset({name!r})")
        start = e
        if e - s != int(np.prod(info["shape"], dtype=np.int64)) * SIZE[info["dtype"]]:
            raise Invalid("TensorInvalidInfo")
    if start + 8 + n != len(buf):
        raise Invalid("MetadataIncompleteBuffer")
    tensors = {}
    for name, info in infos:
        s, e = info["data_offsets"]
        begin = 8 + n + s
        if NUMPY[info["dtype"]] is None:
            tensors[name] = buf[begin:8 + n + e]
            continue
        if begin % SIZE[info["dtype"]] != 0:
            # Legal (the reference reader accepts it) but no zero-copy view: reported by check().
            UNALIGNED.append(f"{path}: tensor {name!r} starts at file byte {begin}, not a multiple of {SIZE[info['dtype']]}")
        count = int(np.prod(info["shape"], dtype=np.int64))
        tensors[name] = np.frombuffer(buf, dtype=NUMPY[info["dtype"]], count=count, offset=begin).reshape(info["shape"])
    return metadata or {}, tensors


def golden_tensors():
    """The tensors of python_written.safetensors: every dtype ouro reads, ranks 0 to 4."""
    return {
        "conv.weight": ("F32", (np.arange(18, dtype=np.float32) * 0.25 - 2.0).reshape(2, 1, 3, 3)),
        "conv.bias": ("F32", np.array([0.5, -1.5], dtype=np.float32)),
        "ema.decay": ("F64", np.array([0.9999, 1.0 / 3.0], dtype=np.float64)),
        "adam.step": ("I64", np.array(12345678901, dtype=np.int64)),
        "labels": ("I64", np.array([0, 9, -3, 2**40, -2**62], dtype=np.int64)),
        "counts": ("I32", np.array([-1, 0, 2**31 - 1], dtype=np.int32)),
        "mask": ("U8", np.array([[0, 1, 255], [7, 128, 3]], dtype=np.uint8)),
    }


GOLDEN_METADATA = {"format": "pt", "model": "unet{base=8,mult=[1,2]}", "note": 'a "quote", a\nnewline, \u00b5'}


def generate():
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "python_written.safetensors"), "wb") as f:
        f.write(serialize(golden_tensors(), GOLDEN_METADATA))

    # Legal but unlike the reference writer: header entries in reverse data order, no metadata,
    # an unpadded header (length 3 mod 8). Readers must not depend on the writer's habits.
    a = np.array([1.5, -2.5, 3.25], dtype=np.float32)
    b = np.array([[10, 20], [30, 40]], dtype=np.int64)
    data = a.tobytes() + b.tobytes()
    header = {"b": {"dtype": "I64", "shape": [2, 2], "data_offsets": [12, 44]},
              "a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((3 - len(text) % 8) % 8)
    assert len(text) % 8 == 3
    with open(os.path.join(OUT, "python_unordered.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)

    for name in ("python_written.safetensors", "python_unordered.safetensors"):
        load(os.path.join(OUT, name))  # both must pass the reference checks
    print("wrote", OUT)


def check(paths):
    for path in paths:
        metadata, tensors = load(path)
        print(f"{path}: OK ({len(tensors)} tensors, metadata {metadata})")
        for note in UNALIGNED:
            print("  note, unaligned:", note)
        UNALIGNED.clear()
        for name, t in tensors.items():
            if isinstance(t, np.ndarray):
                flat = t.reshape(-1)
                print(f"  {name}: {t.dtype} {list(t.shape)} first {flat[:4].tolist()}")
        try:
            import torch
            for name, t in tensors.items():
                if isinstance(t, np.ndarray):
                    torch.from_numpy(t.copy())
            print("  all tensors convert to torch tensors")
        except ImportError:
            pass


def check_png(paths):
    from PIL import Image
    for path in paths:
        with Image.open(path) as im:
            im.verify()  # chunk CRCs and structure
        with Image.open(path) as im:
            px = np.asarray(im)
            print(f"{path}: OK mode {im.mode} size {im.size}, pixels {px.shape}, first row {px[0, :6].tolist()}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "check":
        check(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "png":
        check_png(sys.argv[2:])
    else:
        generate()
