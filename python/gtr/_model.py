"""_model.py — gtr.Model: a GTR model directory, encode() like sentence-transformers."""
import ctypes
import os
import sys
import threading
from ctypes import POINTER, byref, c_char_p, c_float, c_int, c_size_t

import numpy as np

from . import _lib
from ._errors import GtrError, raise_for, raise_null

_DTYPES = {"f32": 0, "float32": 0, "bf16": 1, "bfloat16": 1, "int8": 2}


def _as_bytes(text, i):
    if isinstance(text, str):
        return text.encode("utf-8")
    if isinstance(text, (bytes, bytearray)):
        return bytes(text)
    raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")


class _Progress:
    """tqdm when it is installed, else a line on stderr now and then."""

    def __init__(self, total, enabled):
        self.bar = None
        self.enabled = enabled
        self.total = total
        self.done = 0
        if enabled:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=total, desc="Batches")
            except ImportError:
                pass

    def update(self, n):
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled:
            sys.stderr.write(f"\rgtr: {self.done}/{self.total} batches")
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            sys.stderr.write("\n")


class Model(_lib.Closable):
    """A GTR model (a sentence-transformers directory such as `gtr pull` downloads).

    threads: worker threads (None: all cores); max_len: tokens per text including </s>
    (None: the model's max_seq_length, 512 for GTR), longer texts are truncated;
    dtype: "f32" (default, the reference), "bf16" or "int8";
    device: "cpu" (default; also the GTR_DEVICE environment variable), "cuda" or "cuda:N"
    (the optional plugin libgtr-cuda.so; f32 or bf16);
    spm_compat: which tokenizer implementation to match where segmentations tie (runs of one
    repeated character such as "----"): "0.1" (default: SentencePiece up to 0.2.1, the
    reference data), "0.2.2" (SentencePiece 0.2.2 and later) or "hf" (the Hugging Face
    tokenizer that sentence-transformers uses);
    verify=False skips the weight checksums of a `gtr quantize` copy at load (the structure is
    still validated; also GTR_NO_VERIFY for the command line);
    fingerprint=False does not hash an F16 checkpoint's weights for .fingerprint, for a
    model that only encodes (the load reads each weight once; .fingerprint is then None
    unless the directory records one, and a dense index refuses the model).

    encode() may be called from several Python threads at once: the weights are loaded once
    and each concurrent call encodes in an encode context of its own (the library's
    gtr_context, kept in a pool and reused), with the GIL released while it computes. The
    first call at a time computes on the model's threads, the others each on their own
    thread; the vectors are the same bits either way.
    """

    def __init__(self, path, threads=None, max_len=None, dtype="f32", spm_compat=None,
                 device=None, verify=True, fingerprint=True):
        self._m = None
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of f32, bf16, int8, not {dtype!r}")
        opts = _lib.model_default_options()
        opts.n_threads = int(threads) if threads else 0
        opts.max_len = int(max_len) if max_len else 0
        opts.dtype = _DTYPES[dtype]
        opts.no_verify = 0 if verify else 1
        opts.no_fingerprint = 0 if fingerprint else 1
        device = device if device is not None else os.environ.get("GTR_DEVICE") or None
        self._device = device.encode() if device else None  # kept alive: opts points at it
        opts.device = self._device
        err = _lib.Error()
        raise_for(_lib.cpu_check_env(byref(err)), err)  # a mistyped GTR_CPU would mean generic
        if spm_compat is not None:
            code = c_int(0)
            if _lib.spm_compat_parse(str(spm_compat).encode(), byref(code), byref(err)):
                raise ValueError(err.message.decode(errors="replace"))
            opts.spm_compat = code.value
        m = _lib.model_load(os.fsencode(path), byref(opts), byref(err))
        if not m:
            raise_null(err)
        self._m = m
        self.path = os.fspath(path)
        self._lock = threading.Lock()  # guards _contexts
        self._contexts = []  # idle encode contexts (gtr_context handles)
        self.dim = _lib.model_dim(m)
        self.max_len = _lib.model_max_len(m)

    def close(self):
        """Free the model now (otherwise when it is garbage-collected)."""
        if getattr(self, "_m", None):
            for c in self._contexts:
                _lib.context_free(c)
            self._contexts = []
            _lib.model_free(self._m)
            self._m = None

    def _handle(self):
        if not self._m:
            raise ValueError("the model is closed")
        return self._m

    def _take_context(self):
        with self._lock:
            if self._contexts:
                return self._contexts.pop()
        err = _lib.Error()
        c = _lib.context_create(self._handle(), None, byref(err))
        if not c:
            raise_null(err)
        return c

    def _give_context(self, c):
        with self._lock:
            if self._m:
                self._contexts.append(c)
                return
        _lib.context_free(c)

    def get_sentence_embedding_dimension(self):
        """The output dimension (sentence-transformers' name for .dim)."""
        return self.dim

    @property
    def fingerprint(self):
        """64-bit identity of the weights and config (dense indexes record it); None for a
        model loaded with fingerprint=False that had none recorded."""
        h = self._handle()
        return _lib.model_fingerprint(h) if _lib.model_has_fingerprint(h) else None

    def describe(self):
        """Architecture, parameter count, storage dtype, files."""
        return _lib.model_describe(self._handle()).decode("utf-8", "replace")

    def tokenize(self, text, max_len=None, add_eos=True):
        """T5 SentencePiece ids of text as the model sees them: the ids, then </s> (1); truncated
        to max_len ids (default: the model's) as encode() does. max_len=0: no truncation."""
        data = _as_bytes(text, 0)
        ids = _lib.Ids()
        err = _lib.Error()
        tok = _lib.model_tokenizer(self._handle())
        ml = self.max_len if max_len is None else int(max_len)
        st = _lib.tokenize(tok, data, len(data), ml, 1 if add_eos else 0, byref(ids), byref(err))
        try:
            raise_for(st, err)
            return [ids.ids[i] for i in range(ids.n)]
        finally:
            _lib.ids_free(byref(ids))

    def encode(self, sentences, batch_size=32, normalize=True, show_progress_bar=False,
               convert_to_numpy=True, normalize_embeddings=None, **kwargs):
        """Embed texts: numpy float32 [n, dim] (a 1-D [dim] vector for a single str), exactly the
        vectors of `gtr embed`. GTR's output is L2-normalised by the model itself, so the vectors
        are unit length whether or not normalize (or sentence-transformers' normalize_embeddings)
        is set; the argument is accepted so code written for sentence-transformers runs as is.
        batch_size: texts per library call (it never changes the vectors)."""
        for k in kwargs:
            if k not in ("device", "output_value", "convert_to_tensor", "precision"):
                raise TypeError(f"encode() got an unexpected keyword argument {k!r}")
        single = isinstance(sentences, (str, bytes))
        texts = [sentences] if single else list(sentences)
        data = [_as_bytes(t, i) for i, t in enumerate(texts)]
        batch_size = max(1, int(batch_size))
        out = np.empty((len(data), self.dim), dtype=np.float32)
        n_batches = (len(data) + batch_size - 1) // batch_size
        prog = _Progress(n_batches, bool(show_progress_bar))
        ctx = self._take_context()
        err = _lib.Error()
        try:
            for i0 in range(0, len(data), batch_size):
                chunk = data[i0:i0 + batch_size]
                n = len(chunk)
                ptrs = (c_char_p * n)(*chunk)
                lens = (c_size_t * n)(*[len(b) for b in chunk])
                dst = out[i0:i0 + n].ctypes.data_as(POINTER(c_float))
                st = _lib.context_encode(ctx, ptrs, lens, n, dst, byref(err))
                if st:
                    msg = err.message.decode("utf-8", "replace")
                    raise GtrError(st, f"texts {i0}-{i0 + n - 1}: {msg}" if n > 1 else f"text {i0}: {msg}")
                prog.update(1)
        finally:
            self._give_context(ctx)
            prog.close()
        return out[0] if single else out

    def __repr__(self):
        return f"gtr.Model({self.path!r}, dim={self.dim}, max_len={self.max_len})"
