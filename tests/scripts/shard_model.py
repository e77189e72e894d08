"""shard_model.py [--bin] SRC DST N — copy the sentence-transformers model directory SRC to DST with its
root model.safetensors split into N shards named and indexed as transformers writes them
(model-0000i-of-0000N.safetensors + model.safetensors.index.json; tensor i into shard i % N).
With --bin, SRC's pytorch_model.bin is split instead (pytorch_model-0000i-of-0000N.bin +
pytorch_model.bin.index.json), as transformers saves without safetensors.
Standard library only; a helper for the tests, not a test itself (so not executable)."""
import io
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




# ---- pytorch_model.bin (torch.save's zip) without torch --------------------------------------
# The state dict is unpickled with stand-ins for the few torch globals it names, split, and
# pickled again through the same stand-ins, which sit in sys.modules under torch's names so the
# pickler writes the globals torch.load (and gtr's reader) expect.
import collections
import pickle
import types
import zipfile


class _Tensor:
    def __init__(self, args):
        self.args = args  # (storage ref, offset, size, stride, requires_grad, hooks[, metadata])

    def __reduce__(self):
        return (_torch_utils._rebuild_tensor_v2, self.args)


class _StorageRef:
    def __init__(self, pid):
        self.pid = pid  # ('storage', StorageType, key, location, numel)


def _rebuild_tensor_v2(*args):
    return _Tensor(args)


_torch = types.ModuleType("torch")
_torch_utils = types.ModuleType("torch._utils")
_torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
_rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
for _n in ("FloatStorage", "HalfStorage", "BFloat16Storage", "LongStorage"):
    setattr(_torch, _n, type(_n, (), {"__module__": "torch"}))
_torch._utils = _torch_utils


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module == "torch":
            return getattr(_torch, name)
        if module == "torch._utils":
            return getattr(_torch_utils, name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise pickle.UnpicklingError("unexpected global %s.%s" % (module, name))

    def persistent_load(self, pid):
        return _StorageRef(tuple(pid))


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, _StorageRef) else None


def shard_bin(src_bin, dst_dir, n, base="pytorch_model"):
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = _torch, _torch_utils
    try:
        z = zipfile.ZipFile(src_bin)
        pkl = next(i.filename for i in z.infolist() if i.filename.endswith("/data.pkl"))
        prefix = pkl[: -len("data.pkl")]
        sd = _Unpickler(io.BytesIO(z.read(pkl))).load()
        meta = getattr(sd, "_metadata", None)
        names = list(sd)
        weight_map = {}
        for s in range(n):
            fname = "%s-%05d-of-%05d.bin" % (base, s + 1, n)
            part = collections.OrderedDict((k, sd[k]) for k in names[s::n])
            if meta is not None:
                part._metadata = meta
            buf = io.BytesIO()
            _Pickler(buf, protocol=2).dump(part)
            arch = fname[: -len(".bin")]
            with zipfile.ZipFile(os.path.join(dst_dir, fname), "w", zipfile.ZIP_STORED) as out:
                out.writestr(arch + "/data.pkl", buf.getvalue())
                keys = sorted({t.args[0].pid[2] for t in part.values()})
                for key in keys:
                    out.writestr(arch + "/data/" + key, z.read(prefix + "data/" + key))
                out.writestr(arch + "/version", "3\n")
            for k in part:
                weight_map[k] = fname
        with open(os.path.join(dst_dir, base + ".bin.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


if __name__ == "__main__":
    if sys.argv[1] == "--bin":
        src, dst, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("reference"))
        for f in ("model.safetensors", "pytorch_model.bin"):
            if os.path.exists(os.path.join(dst, f)):
                os.remove(os.path.join(dst, f))
        shard_bin(os.path.join(src, "pytorch_model.bin"), dst, n)
    else:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
