"""Scale out: where the units of work of a step run (in this process, or on a Dask cluster).

:mod:`dltools.scale.executor` is the one executor abstraction every batch step uses
(``--dask``); :mod:`dltools.scale.cache` loads a model once per process (once per Dask worker,
not once per task).
"""
