from .truncate_sentence_dataset import TruncateSentenceDataset  # noqa: F401
