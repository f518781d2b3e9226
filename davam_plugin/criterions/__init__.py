from . import awd_elbo, davam, davam_prior  # noqa: F401
