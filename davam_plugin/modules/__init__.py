from .bahdanau_attention import BahdanauAttention  # noqa: F401
from .ema_vector_quantizer import EMAVectorQuantizer  # noqa: F401
