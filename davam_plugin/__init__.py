"""davam_plugin: fairseq user-dir plugin for DAVAM and AWD text VAEs.

``--user-dir davam_plugin`` imports this package, then ``models/`` and ``tasks/``; criterions
are imported here because fairseq does not import them for user dirs.
"""

import logging

# fairseq's text_to_speech task logs "Please install tensorboardX" at INFO on import
logging.getLogger("fairseq.tasks.text_to_speech").setLevel(logging.WARNING)

from davam_plugin import atomic_checkpoint, clean_exit  # noqa: E402
from davam_plugin.checkpoint_safety import allow_fairseq_checkpoint_types

allow_fairseq_checkpoint_types()
atomic_checkpoint.install()  # atomic checkpoint files, resume past a cut-short one (see atomic_checkpoint.py)
clean_exit.register()  # no abort at exit when training stops mid-epoch (see clean_exit.py)

from davam_plugin import criterions, models, optim, tasks  # noqa: E402,F401
