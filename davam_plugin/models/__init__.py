from . import davam  # noqa: F401
