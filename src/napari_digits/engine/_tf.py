"""TensorFlow and Keras, imported without their start-up noise.

TensorFlow's C++ libraries print to file descriptor 2 while they load and
while CUDA is first probed (oneDNN, cudart, ``cuInit``, absl's "All log
messages before absl::InitializeLog()"), before any log level applies. A user
should see only this program's own messages, in a terminal and in the
viewer's (whose engine process shares its stderr), so file descriptor 2 goes
to /dev/null for those two steps. Every engine module imports TensorFlow and
Keras from here::

    from napari_digits.engine._tf import keras, tf
"""

from __future__ import annotations

import os

from napari_digits.engine.quiet import quiet_fd2

#: C++ log level once TensorFlow is up: warnings and errors come as exceptions
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


with quiet_fd2():
    import keras
    import tensorflow as tf

    tf.config.list_physical_devices("GPU")  # the cuInit probe prints here

__all__ = ["keras", "quiet_fd2", "tf"]
