"""Reading an archive: many scanned pages into one table, kept as they finish.

The same pipeline serves the sequential ``napari-digits read`` and a Dask
cluster (``--workers N``, ``--scheduler ADDRESS``):

- :mod:`~napari_digits.archive.pages`: which files to read, in which order,
  and reading one file (every page of it) into rows; pure core.
- :mod:`~napari_digits.archive.journal`: the rows of each finished file are
  appended to a journal beside the output and flushed to disk, so that a
  crash or a kill loses at most the files being read; the journal is
  finalised atomically into the CSV or Parquet output, in page order; a
  later ``--resume`` skips what is done. Pure core.
- :mod:`~napari_digits.archive.cluster`: ``dask.distributed``: a
  ``LocalCluster`` or a user's scheduler, the model loaded once a worker,
  files streamed with a bounded number in flight, a file that fails twice
  reported and skipped. TensorFlow runs only in the workers.
"""
