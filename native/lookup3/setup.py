"""The extension's build. `optional`: where no C compiler is found the install still succeeds without it,
and workers/partition_key.py hashes in Python."""

from setuptools import Extension, setup

setup(
    ext_modules=[Extension("hubcap_lookup3", ["hubcap_lookup3.c"], optional=True)],
    py_modules=[],
)
