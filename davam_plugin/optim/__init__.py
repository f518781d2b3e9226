"""Learning-rate schedules of the papers (registered with fairseq on import)."""

from davam_plugin.optim import davam_plateau  # noqa: F401
