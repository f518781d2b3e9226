"""davam_plugin: fairseq user-dir plugin for DAVAM and AWD text VAEs.

``--user-dir davam_plugin`` imports this package, then ``models/`` and ``tasks/``; criterions
are imported here because fairseq does not import them for user dirs.
"""

from davam_plugin import atomic_checkpoint, clean_exit
from davam_plugin.checkpoint_safety import allow_fairseq_checkpoint_types

allow_fairseq_checkpoint_types()
atomic_checkpoint.install()  # atomic checkpoint files, resume past a cut-short one (see atomic_checkpoint.py)
clean_exit.register()  # no abort at exit when training stops mid-epoch (see clean_exit.py)

from davam_plugin import criterions, models, optim, tasks  # noqa: E402,F401
