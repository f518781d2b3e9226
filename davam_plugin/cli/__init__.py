"""The project's installed console scripts (``entry_points`` in ``setup.py``).

Each command is a module here with a ``main(argv=None)`` that parses ``argv`` (default
``sys.argv[1:]``) and returns the exit status: ``davam-plot`` is :mod:`davam_plugin.cli.plot`.
"""
