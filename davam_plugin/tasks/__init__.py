from . import sentence_vae  # noqa: F401
