"""gtr — GTR dense retrieval (T5 encoder + mean pooling + Dense + L2 norm) over libgtr.so.

    import gtr
    model = gtr.Model("models/gtr-t5-base")
    vecs = model.encode(["what is dense retrieval?", "T5 encoders"])   # float32 [2, 768]
    index = gtr.Index("scifact.gtri")
    ids, scores, docs = index.search("vitamin D and bone density", k=10, model=model)

Errors from the library are raised as gtr.GtrError with its message. The shared library is
found through $GTR_LIBRARY, next to this package, the repository's lib/, or the system.
"""
from . import _lib
from ._errors import GtrError
from ._index import Index, SearchResult
from ._model import Model

__version__ = "0.1.0"
library_version = _lib.version().decode()
library_path = _lib.path

__all__ = ["Model", "Index", "SearchResult", "GtrError", "library_version", "library_path"]
