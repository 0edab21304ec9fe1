"""napari-digits: handwritten-digit recognition in napari.

The package is layered: a pure core (``kernels``, ``scan``, ``data``,
``results``, ``learned_filters``) on numpy, scipy and scikit-image; an
``engine`` package, the only place TensorFlow is imported, running in its own
process; thin napari widgets in ``_widgets``; and a command line in ``cli``.
Importing this package never imports Qt or TensorFlow.
"""

__version__ = "0.1.0"
