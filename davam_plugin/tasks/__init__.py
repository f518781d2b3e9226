from . import davam_prior, sentence_vae  # noqa: F401
