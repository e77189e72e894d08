"""_lib.py — find libgtr.so and declare the C functions the binding calls (ctypes).

Where the library comes from, first match wins:
  1. $GTR_LIBRARY (a path to libgtr.so),
  2. next to this package (the copy `pip install ./python` bundles),
  3. the repository's lib/ when the package is used from a checkout (python/gtr -> ../../lib),
  4. the system (ld.so's search path, e.g. after `make install`).
"""
import ctypes
import ctypes.util
import os
from ctypes import POINTER, c_char_p, c_float, c_int, c_int32, c_size_t, c_uint, c_uint64, c_void_p

_here = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    env = os.environ.get("GTR_LIBRARY")
    if env:
        yield env
        return  # an explicit choice is not second-guessed
    yield os.path.join(_here, "libgtr.so")
    yield os.path.join(os.path.dirname(os.path.dirname(_here)), "lib", "libgtr.so")
    found = ctypes.util.find_library("gtr")
    yield found or "libgtr.so.0"


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(f"{path} (absent)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{path} ({e})")
    raise ImportError("gtr: cannot load libgtr.so; build it with `make lib` or set GTR_LIBRARY. Tried: "
                      + "; ".join(tried))


lib, path = _load()


class Error(ctypes.Structure):
    _fields_ = [("code", c_int), ("message", ctypes.c_char * 1024)]


class ModelOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("n_threads", c_int), ("pool", c_void_p), ("dtype", c_int), ("max_len", c_int),
                ("spm_compat", c_int), ("max_memory", c_size_t), ("device", c_char_p), ("no_verify", c_int),
                ("batch_size", c_size_t), ("n_contexts", c_int), ("no_fingerprint", c_int)]


class Ids(ctypes.Structure):
    _fields_ = [("ids", POINTER(c_int32)), ("n", c_size_t), ("cap", c_size_t)]


class Hit(ctypes.Structure):
    _fields_ = [("doc", c_size_t), ("score", ctypes.c_double), ("id", c_void_p), ("id_len", c_size_t)]


class FusionOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("method", c_int), ("rrf_k", ctypes.c_double), ("weights", c_void_p)]


class RetrieverOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("model", c_void_p), ("index", c_void_p), ("ann", c_void_p), ("bm25", c_void_p),
                ("pool", c_void_p)]


class RetrieveOptions(ctypes.Structure):
    _fields_ = [("size", c_size_t), ("method", c_int), ("k", c_size_t), ("depth", c_size_t),
                ("fusion", FusionOptions), ("alpha", ctypes.c_double), ("skip_ids", c_void_p),
                ("use_compact", c_int), ("nprobe", ctypes.c_uint32), ("vectors", POINTER(c_float)),
                ("batch", c_size_t), ("progress", c_void_p), ("progress_user", c_void_p),
                ("doc_begin", c_size_t), ("doc_end", c_size_t), ("allow", c_void_p)]


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


E = POINTER(Error)
version = _fn("gtr_version", c_char_p)
status_str = _fn("gtr_status_str", c_char_p, c_int)
num_cores = _fn("gtr_cpu_cores", c_int)
cpu_check_env = _fn("gtr_cpu_check_env", c_int, E)
pool_create = _fn("gtr_pool_create", c_void_p, c_int, E)
pool_free = _fn("gtr_pool_free", None, c_void_p)

model_default_options = _fn("gtr_model_default_options", ModelOptions)
spm_compat_parse = _fn("gtr_spm_compat_parse", c_int, c_char_p, POINTER(c_int), E)
model_load = _fn("gtr_model_load", c_void_p, c_char_p, POINTER(ModelOptions), E)
model_free = _fn("gtr_model_free", None, c_void_p)
model_dim = _fn("gtr_model_dim", c_int, c_void_p)
model_max_len = _fn("gtr_model_max_len", c_int, c_void_p)
model_tokenizer = _fn("gtr_model_tokenizer", c_void_p, c_void_p)
model_describe = _fn("gtr_model_describe", c_char_p, c_void_p)
model_fingerprint = _fn("gtr_model_fingerprint", c_uint64, c_void_p)
model_has_fingerprint = _fn("gtr_model_has_fingerprint", c_int, c_void_p)
model_encode = _fn("gtr_model_encode", c_int, c_void_p, POINTER(c_char_p), POINTER(c_size_t), c_size_t,
                   POINTER(c_float), E)
context_create = _fn("gtr_context_create", c_void_p, c_void_p, c_void_p, E)
context_free = _fn("gtr_context_free", None, c_void_p)
context_encode = _fn("gtr_context_encode", c_int, c_void_p, POINTER(c_char_p), POINTER(c_size_t), c_size_t,
                     POINTER(c_float), E)
tokenize = _fn("gtr_tokenizer_encode", c_int, c_void_p, c_char_p, c_size_t, c_int, c_int, POINTER(Ids), E)
ids_free = _fn("gtr_ids_free", None, POINTER(Ids))

index_open = _fn("gtr_index_open", c_void_p, c_char_p, c_uint, c_void_p, E)
index_free = _fn("gtr_index_free", None, c_void_p)
ann_open = _fn("gtr_ann_open", c_void_p, c_char_p, c_void_p, E)
ann_free = _fn("gtr_ann_free", None, c_void_p)
index_count = _fn("gtr_index_count", c_size_t, c_void_p)
index_dim = _fn("gtr_index_dim", c_int, c_void_p)
index_model_hint = _fn("gtr_index_model_hint", c_char_p, c_void_p)
index_doc_id = _fn("gtr_index_doc_id", c_void_p, c_void_p, c_size_t, POINTER(c_size_t))
index_doc_snippet = _fn("gtr_index_doc_snippet", c_void_p, c_void_p, c_size_t, POINTER(c_size_t))
index_vector = _fn("gtr_index_vector", POINTER(c_float), c_void_p, c_size_t)
fields_open = _fn("gtr_fields_open", c_void_p, c_char_p, c_void_p, E)
fields_free = _fn("gtr_fields_free", None, c_void_p)
fields_where = _fn("gtr_fields_where", c_int, c_void_p, c_void_p, POINTER(c_char_p), POINTER(c_char_p), c_size_t,
                   ctypes.c_void_p, POINTER(c_size_t), E)
index_allow_ids = _fn("gtr_index_allow_ids", c_int, c_void_p, POINTER(c_char_p), POINTER(c_size_t), c_size_t,
                      ctypes.c_void_p, POINTER(c_size_t), POINTER(c_size_t), E)
index_check_model = _fn("gtr_index_check_model", c_int, c_void_p, c_void_p, E)

retriever_default_options = _fn("gtr_retriever_default_options", RetrieverOptions)
retriever_open = _fn("gtr_retriever_open", c_void_p, POINTER(RetrieverOptions), E)
retriever_free = _fn("gtr_retriever_free", None, c_void_p)
retrieve_default_options = _fn("gtr_retrieve_default_options", RetrieveOptions)


def _check_sizes():
    # The options structs are mirrored here by hand; their size field is the C sizeof. A
    # header change the mirror missed makes the library read past the Python struct (a
    # document range of garbage once did), so refuse to import instead. Checked once.
    for name, fn, cls in (("gtr_model_options", model_default_options, ModelOptions),
                          ("gtr_retriever_options", retriever_default_options, RetrieverOptions),
                          ("gtr_retrieve_options", retrieve_default_options, RetrieveOptions)):
        if fn().size != ctypes.sizeof(cls):
            raise ImportError("gtr: the binding's %s (%d bytes) does not match the library's "
                              "(%d bytes): rebuild the binding from the same source tree"
                              % (name, ctypes.sizeof(cls), fn().size))


_check_sizes()
retriever_search = _fn("gtr_retriever_search", c_int, c_void_p, POINTER(c_char_p), POINTER(c_size_t), c_size_t,
                       POINTER(RetrieveOptions), POINTER(Hit), POINTER(c_size_t), E)


class Closable:
    """Owner of a native handle: close() frees it; also on garbage collection and at the end
    of a with block."""

    def close(self):
        raise NotImplementedError

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
