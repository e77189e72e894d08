"""shard_model.py SRC DST N — copy the sentence-transformers model directory SRC to DST with its
root model.safetensors split into N shards named and indexed as transformers writes them
(model-0000i-of-0000N.safetensors + model.safetensors.index.json; tensor i into shard i % N).
Standard library only; a helper for the tests, not a test itself (so not executable)."""
import json
import os
import shutil
import struct
import sys


def main(src, dst, n):
    shutil.copytree(src, dst, symlinks=False, ignore=shutil.ignore_patterns("reference", "pytorch_model.bin"))
    path = os.path.join(dst, "model.safetensors")
    with open(path, "rb") as f:
        hl = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(hl))
        data = f.read()
    header.pop("__metadata__", None)
    names = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    weight_map, total = {}, 0
    for s in range(n):
        fname = "model-%05d-of-%05d.safetensors" % (s + 1, n)
        h, blobs, off = {}, [], 0
        for name in names[s::n]:
            b, e = header[name]["data_offsets"]
            h[name] = {"dtype": header[name]["dtype"], "shape": header[name]["shape"], "data_offsets": [off, off + e - b]}
            blobs.append(data[b:e])
            off += e - b
            weight_map[name] = fname
        total += off
        hj = json.dumps(h, separators=(",", ":")).encode()
        hj += b" " * (-len(hj) % 8)
        with open(os.path.join(dst, fname), "wb") as f:
            f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
    with open(os.path.join(dst, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    os.remove(path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
