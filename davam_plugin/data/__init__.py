from .code_sequence_dataset import CodeSequenceDataset  # noqa: F401
from .truncate_sentence_dataset import TruncateSentenceDataset  # noqa: F401
