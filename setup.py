"""pymatgen-xanes-nn: the metadata lives in pyproject.toml (PEP 621); this shim keeps `python setup.py` and the
layout our users asked for working."""

from setuptools import setup

setup()
