from .attentive_lstm_recurrence import AttentiveLSTMRecurrence  # noqa: F401
from .double_lstm_recurrence import DoubleLSTMRecurrence  # noqa: F401
from .bahdanau_attention import BahdanauAttention  # noqa: F401
from .ema_vector_quantizer import EMAVectorQuantizer  # noqa: F401
from .linear_cross_entropy import LinearCrossEntropy  # noqa: F401
from .mask_dropout import MaskDropout  # noqa: F401
from .gradient_reversal import GradientReversal, grad_reverse  # noqa: F401
from .relaxed_topk import capped_simplex_projection, drop_lowest_k, k_per_sentence  # noqa: F401
from .gated_causal_conv import GatedCausalConv1d  # noqa: F401
from .gaussian_conv_prior import GaussianConvPrior  # noqa: F401
