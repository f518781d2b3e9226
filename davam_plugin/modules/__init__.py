from .attentive_lstm_recurrence import AttentiveLSTMRecurrence  # noqa: F401
from .bahdanau_attention import BahdanauAttention  # noqa: F401
from .ema_vector_quantizer import EMAVectorQuantizer  # noqa: F401
from .linear_cross_entropy import LinearCrossEntropy  # noqa: F401
from .mask_dropout import MaskDropout  # noqa: F401
