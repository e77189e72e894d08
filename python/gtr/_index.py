"""_index.py — gtr.Index: a dense index built by `gtr index`, exact top-k search through the
library's retriever (gtr_retriever_search, the pipeline of `gtr search`)."""
import collections
import ctypes
import os
from ctypes import POINTER, byref, c_float, c_size_t

import numpy as np

from . import _lib
from ._errors import raise_for, raise_null
from ._model import Model

SearchResult = collections.namedtuple("SearchResult", ["ids", "scores", "docs"])
SearchResult.__doc__ = """Hits of a search, best first. For one query: ids is a list of document
ids (str), scores a float32 array, docs the document numbers (for Index.snippet); for a batch of
queries, one such list / array row per query."""


class Index(_lib.Closable):
    """A dense index (`gtr index`), memory-mapped. threads: threads for search (None: all cores);
    verify=False skips the vector checksums at open (the structure is still validated).
    ann: an approximate (IVF) index of it (`gtr ann-build`; its deletions apply): search then
    scans nprobe lists per query (0: the library's default) instead of every document."""

    def __init__(self, path, threads=None, verify=True, ann=None, nprobe=0):
        self._ix = None
        self._pool = None
        self._rt = None
        self._ann = None
        self._fields = None
        self.nprobe = int(nprobe)
        err = _lib.Error()
        raise_for(_lib.cpu_check_env(byref(err)), err)  # a mistyped GTR_CPU would mean generic
        self._pool = _lib.pool_create(int(threads) if threads else 0, byref(err))
        if not self._pool:
            raise_null(err)
        ix = _lib.index_open(os.fsencode(path), 0 if verify else 1, self._pool, byref(err))
        if not ix:
            self.close()
            raise_null(err)
        self._ix = ix
        if ann is not None:
            self._ann = _lib.ann_open(os.fsencode(ann), ix, byref(err))
            if not self._ann:
                self.close()
                raise_null(err)
        ro = _lib.retriever_default_options()
        ro.index = ix
        ro.ann = self._ann
        ro.pool = self._pool
        rt = _lib.retriever_open(byref(ro), byref(err))
        if not rt:
            self.close()
            raise_null(err)
        self._rt = rt
        self.path = os.fspath(path)
        self.dim = _lib.index_dim(ix)
        self._model = None
        self._checked = set()

    def close(self):
        if getattr(self, "_rt", None):
            _lib.retriever_free(self._rt)
            self._rt = None
        if getattr(self, "_ann", None):
            _lib.ann_free(self._ann)
            self._ann = None
        if getattr(self, "_fields", None):
            _lib.fields_free(self._fields)
            self._fields = None
        if getattr(self, "_ix", None):
            _lib.index_free(self._ix)
            self._ix = None
        if getattr(self, "_pool", None):
            _lib.pool_free(self._pool)
            self._pool = None

    def __len__(self):
        return _lib.index_count(self._handle())

    def _handle(self):
        if not self._ix:
            raise ValueError("the index is closed")
        return self._ix

    @property
    def model_hint(self):
        """The model directory recorded when the index was built (None when not recorded)."""
        h = _lib.index_model_hint(self._handle())
        return h.decode("utf-8", "replace") if h else None

    def doc_id(self, doc):
        """The id of document number doc."""
        n = c_size_t()
        p = _lib.index_doc_id(self._handle(), int(doc), byref(n))
        if not p:
            raise IndexError(f"document {doc} is out of range (the index has {len(self)})")
        return ctypes.string_at(p, n.value).decode("utf-8", "replace")

    def snippet(self, doc):
        """The start of document doc's passage, as kept in the index ('' when none)."""
        n = c_size_t()
        p = _lib.index_doc_snippet(self._handle(), int(doc), byref(n))
        if not p:
            if not 0 <= int(doc) < len(self):
                raise IndexError(f"document {doc} is out of range (the index has {len(self)})")
            return ""
        return ctypes.string_at(p, n.value).decode("utf-8", "replace")

    def vector(self, doc):
        """Document doc's vector (a float32 copy)."""
        if not 0 <= int(doc) < len(self):
            raise IndexError(f"document {doc} is out of range (the index has {len(self)})")
        p = _lib.index_vector(self._handle(), int(doc))
        return np.ctypeslib.as_array(p, shape=(self.dim,)).copy()

    def check_model(self, model):
        """Raise GtrError unless model is the one that built the index."""
        err = _lib.Error()
        raise_for(_lib.index_check_model(self._handle(), model._handle(), byref(err)), err)

    def _allow(self, filter_ids):
        """The filter bitmap of a list of document ids (ValueError naming an unknown one)."""
        ids = [i.encode("utf-8") if isinstance(i, str) else bytes(i) for i in filter_ids]
        n = len(ids)
        arr = (ctypes.c_char_p * max(1, n))(*ids)
        lens = (c_size_t * max(1, n))(*[len(i) for i in ids])
        bits = ctypes.create_string_buffer((len(self) + 7) // 8 + 1)
        unknown, first = c_size_t(), c_size_t()
        err = _lib.Error()
        raise_for(_lib.index_allow_ids(self._handle(), arr, lens, n, bits, byref(unknown), byref(first),
                                       byref(err)), err)
        if unknown.value:
            raise ValueError(f"filter_ids: {ids[first.value].decode('utf-8', 'replace')!r} is not in the index "
                             f"({unknown.value} unknown)")
        return bits

    def _where(self, where, allow):
        """The bitmap of the documents whose metadata fields (INDEX.fields) match every
        {"field": value} of where, ANDed with allow (when not None)."""
        err = _lib.Error()
        if self._fields is None:
            self._fields = _lib.fields_open(os.fsencode(self.path + ".fields"), self._handle(), byref(err))
            if not self._fields:
                self._fields = None
                raise_null(err)

        def text(v):
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, int):
                return str(v)
            if isinstance(v, float):
                return "%.17g" % v
            if isinstance(v, str):
                return v
            raise ValueError(f"where: {v!r} must be a str, int, float or bool")
        names = [k.encode("utf-8") for k in where]
        values = [text(v).encode("utf-8") for v in where.values()]
        n = len(names)
        bits = ctypes.create_string_buffer((len(self) + 7) // 8 + 1)
        raise_for(_lib.fields_where(self._fields, self._handle(), (ctypes.c_char_p * max(1, n))(*names),
                                    (ctypes.c_char_p * max(1, n))(*values), n, bits, None, byref(err)), err)
        if allow is not None:
            bits = ctypes.create_string_buffer(bytes(a & b for a, b in zip(bits.raw, allow.raw)), len(bits))
        return bits

    def search(self, queries, k=10, model=None, filter_ids=None, nprobe=None, where=None):
        """Exact top-k by inner product (approximate with ann: the probed lists). queries: vectors (float32 [dim] or [n, dim]) or texts (a
        str or a list of str), which are embedded with model — by default the model recorded in
        the index, loaded on first use. filter_ids: only these documents are returned (exact
        search: the hits of an index holding only them; an unknown id is a ValueError).
        where: {"field": value, ...}, only documents whose metadata fields (INDEX.fields, written
        by `gtr index`) match them all. nprobe: lists scanned for this call (with ann; default
        the Index's). Returns
        SearchResult(ids, scores, docs); a single query (a str or a 1-D vector) gives flat
        lists, a batch one row per query."""
        ix = self._handle()
        allow = self._allow(filter_ids) if filter_ids is not None else None
        if where:
            allow = self._where(where, allow)
        texts = isinstance(queries, str) or (isinstance(queries, (list, tuple)) and queries
                                             and isinstance(queries[0], str))
        if texts:
            if model is None:
                if self._model is None:
                    if not self.model_hint:
                        raise ValueError("the index does not record its model: pass model=gtr.Model(...)")
                    self._model = Model(self.model_hint)
                model = self._model
            if id(model) not in self._checked:
                self.check_model(model)
                self._checked.add(id(model))
            vecs = model.encode(queries)
        else:
            vecs = np.asarray(queries, dtype=np.float32)
        single = vecs.ndim == 1
        q = np.ascontiguousarray(vecs.reshape(1, -1) if single else vecs, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"query vectors must have {self.dim} dimensions, got shape {vecs.shape}")
        k = int(k)
        if k < 1:
            raise ValueError("k must be >= 1")
        nq = q.shape[0]
        hits = (_lib.Hit * max(1, nq * k))()
        n_hits = (c_size_t * max(1, nq))()
        opts = _lib.retrieve_default_options()
        opts.k = k
        opts.nprobe = self.nprobe if nprobe is None else int(nprobe)
        if nprobe is not None and (self._ann is None or int(nprobe) < 1):
            raise ValueError("nprobe needs an Index opened with ann= and must be >= 1")
        opts.allow = ctypes.cast(allow, ctypes.c_void_p) if allow is not None else None
        opts.vectors = q.ctypes.data_as(POINTER(c_float))  # dense, the vectors given
        err = _lib.Error()
        st = _lib.retriever_search(self._rt, None, None, nq, byref(opts), hits, n_hits, byref(err))
        raise_for(st, err)
        ids, scores, docs = [], [], []
        for i in range(nq):
            row = [hits[i * k + j] for j in range(n_hits[i])]
            docs.append([h.doc for h in row])
            ids.append([ctypes.string_at(h.id, h.id_len).decode("utf-8", "replace") for h in row])
            scores.append(np.array([h.score for h in row], dtype=np.float32))
        if single:
            return SearchResult(ids[0], scores[0], docs[0])
        return SearchResult(ids, np.array(scores, dtype=np.float32) if nq else np.empty((0, 0), np.float32), docs)

    def __repr__(self):
        return f"gtr.Index({self.path!r}, documents={len(self) if self._ix else 'closed'}, dim={self.dim})"
