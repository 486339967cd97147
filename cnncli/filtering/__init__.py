"""Image filtering: kernels on images as a CNN layer applies them (correlation), then ReLU/pooling.

Modules
    ``kernels``    the named-kernel catalogue and custom-kernel spec parsing (pure NumPy)
    ``stages``     the ``--then`` stages: ReLU, max/avg pooling
    ``correlate``  the validating NumPy wrapper: geometry, borders, strategy, threads
    (private)      every Numba-compiled function, in one module of its own
    ``pipeline``   one :class:`~cnncli.filtering.pipeline.FilterSpec` and ``filter_file``
    ``batch``      inputs (files, globs, folders) → jobs with output names; the per-file loop

Importing this package imports nothing heavy: numpy and Numba load with the submodules that need
them, so ``cnncli shape`` and ``cnncli summary`` (and ``cnncli filter --help``) stay fast.
"""
