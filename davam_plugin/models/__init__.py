from . import awd, davam, davam_prior  # noqa: F401
