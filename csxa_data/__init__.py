"""csxa_data: read, validate, repair and publish the Cervical Spine X-ray Atlas (CSXA).

``csxa_data.load_variant(NAME, registry=..., rev=..., split=...)`` is the one-call loader for other
teams (:mod:`csxa_data.load`; it imports torch, so only when asked for)."""

__version__ = "0.1.0"

# pandas 3 keeps text in pyarrow when pyarrow is installed (Hugging Face `datasets` brings it), and
# pyarrow cannot hold the lone surrogates a hostile release may carry (ingest logs them escaped): keep
# pandas' own Python strings, the storage every output was built and tested with, pyarrow or not.
import pandas as _pandas  # noqa: E402

_pandas.set_option("mode.string_storage", "python")


def __getattr__(name: str):
    if name == "load_variant":
        from csxa_data.load import load_variant

        return load_variant
    raise AttributeError(f"module 'csxa_data' has no attribute {name!r}")
