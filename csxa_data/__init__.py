"""csxa_data: read, validate, repair and publish the Cervical Spine X-ray Atlas (CSXA).

``csxa_data.load_variant(NAME, registry=..., rev=..., split=...)`` is the one-call loader for other
teams (:mod:`csxa_data.load`; it imports torch, so only when asked for)."""

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "load_variant":
        from csxa_data.load import load_variant

        return load_variant
    raise AttributeError(f"module 'csxa_data' has no attribute {name!r}")
