"""davam_plugin: fairseq user-dir plugin for DAVAM and AWD text VAEs.

``--user-dir davam_plugin`` imports this package, then ``models/`` and ``tasks/``; criterions
are imported here because fairseq does not import them for user dirs.
"""

from davam_plugin import clean_exit
from davam_plugin.checkpoint_safety import allow_fairseq_checkpoint_types

allow_fairseq_checkpoint_types()
clean_exit.register()  # no abort at exit when training stops mid-epoch (see clean_exit.py)

from davam_plugin import criterions, models, optim, tasks  # noqa: E402,F401
