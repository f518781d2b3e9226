"""davam_plugin: DAVAM and AWD text VAEs as a fairseq (v1) user-dir plugin.

torch and fairseq are deliberately NOT listed in install_requires: pip would otherwise pull
the newest CUDA torch and ``fairseq``'s broken metadata. Install them first as
``scripts/setup_env.sh`` (``make venv``) does: torch==2.13.0 alone, then
``pip install --no-deps ve-fairseq==0.12.3``.
"""

from setuptools import find_packages, setup

setup(
    name="davam_plugin",
    version="0.1.0",
    description="DAVAM and AWD sequence VAEs for fairseq (--user-dir davam_plugin)",
    packages=find_packages(include=["davam_plugin", "davam_plugin.*"]),
    python_requires=">=3.10",
    install_requires=[
        "hydra-core>=1.3.2",
        "omegaconf",
        "numpy<2",
        "bitarray",
        "scikit-learn",
        "tqdm",
        "sacrebleu>=1.4.12",
        "regex",
        "sentencepiece",
        "sacremoses",
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "pytest-xdist"]},
    entry_points={
        "console_scripts": [
            "davam-prepare-corpus = davam_plugin.cli.prepare_corpus:main",
            "davam-demo-corpus = davam_plugin.cli.demo_corpus:main",
            "davam-evaluate = davam_plugin.cli.evaluate:main",
            "davam-diversity = davam_plugin.cli.diversity:main",
            "davam-fluency = davam_plugin.cli.fluency:main",
            "davam-latent = davam_plugin.cli.latent:main",
            "davam-adversary-view = davam_plugin.cli.adversary_view:main",
            "davam-plot = davam_plugin.cli.plot:main",
            "davam-sweep = davam_plugin.cli.sweep:main",
            "davam-augment = davam_plugin.cli.augment:main",
        ],
    },
)
