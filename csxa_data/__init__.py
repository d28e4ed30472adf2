"""csxa_data: read, validate, repair and publish the Cervical Spine X-ray Atlas (CSXA)."""

__version__ = "0.1.0"
