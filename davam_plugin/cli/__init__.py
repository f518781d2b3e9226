"""The project's installed console scripts (``entry_points`` in ``setup.py``).

Each command is a module here with a ``main(argv=None)`` that parses ``argv`` (default
``sys.argv[1:]``) and returns the exit status (problems: one error line, non-zero status):

    davam-prepare-corpus   prepare_corpus   raw text -> fairseq binaries + preprocessing.json
    davam-demo-corpus      demo_corpus      the built-in synthetic corpus (train/valid/test.txt)
    davam-evaluate         evaluate         DAVAM (with its prior) / AWD numbers on one split
    davam-diversity        diversity        Ent, Dist-1, Dist-2 of generated sentences
    davam-fluency          fluency          sentence NLL under a fairseq LM per length bucket
    davam-latent           latent           decode chosen latent codes of an AWD model
    davam-adversary-view   adversary_view   HTML view of an AWD adversary's drop probabilities
    davam-plot             plot             training curves of fairseq logs

Shared pieces (logging, atomic output files, JSON, progress bars, the stored corpus
preparation of raw sentences) are in :mod:`davam_plugin.cli.common`.
"""
