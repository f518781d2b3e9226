from . import davam, davam_prior  # noqa: F401
