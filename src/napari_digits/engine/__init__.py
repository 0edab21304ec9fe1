"""The TensorFlow engine: the only package that imports TensorFlow.

TensorFlow runs in a separate process started with ``spawn`` (see DESIGN.md):
the viewer talks to it through :mod:`napari_digits.engine.client` with the
typed messages of :mod:`napari_digits.engine.protocol`. Importing this package,
``protocol`` or ``client`` never imports TensorFlow; ``server`` and ``models``
do, and only ever run inside the engine process (or a command-line process
without Qt).
"""
