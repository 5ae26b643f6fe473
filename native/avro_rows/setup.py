"""The extension's build. `optional`: where no C compiler is found the install still succeeds without it,
and workers/sinks/lake/avro_columns.py encodes in Python (and logs that it does)."""

from setuptools import Extension, setup

setup(
    ext_modules=[Extension("hubcap_avro_rows", ["hubcap_avro_rows.c"], optional=True)],
    py_modules=[],
)
