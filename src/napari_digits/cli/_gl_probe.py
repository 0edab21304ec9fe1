"""Print the OpenGL renderer that Qt gets on this display, as one JSON line.

Run by ``napari-digits doctor`` in a subprocess of its own: an OpenGL context
and TensorFlow must never share a process (see DESIGN.md), and a Qt that
cannot open the display aborts the process it runs in.
"""

from __future__ import annotations

import json
import sys


def probe() -> dict[str, str]:
    """Create an offscreen OpenGL context with Qt and describe its renderer.

    Returns
    -------
    dict of str to str
        ``qt_api``, ``platform``, ``renderer``, ``version`` and ``vendor``.

    Raises
    ------
    RuntimeError
        If Qt cannot create or activate an OpenGL context.
    """
    import qtpy
    from qtpy.QtGui import QGuiApplication, QOffscreenSurface, QOpenGLContext

    app = QGuiApplication(sys.argv[:1])
    context = QOpenGLContext()
    if not context.create():
        raise RuntimeError("Qt could not create an OpenGL context")
    surface = QOffscreenSurface()
    surface.setFormat(context.format())
    surface.create()
    if not context.makeCurrent(surface):
        raise RuntimeError("Qt could not make an OpenGL context current")
    from vispy.gloo import gl  # what napari's canvas draws with

    info = {
        "qt_api": qtpy.API_NAME,
        "platform": app.platformName(),
        "renderer": gl.glGetParameter(gl.GL_RENDERER),
        "version": gl.glGetParameter(gl.GL_VERSION),
        "vendor": gl.glGetParameter(gl.GL_VENDOR),
    }
    context.doneCurrent()
    return info


def main() -> int:
    """Print the probe's JSON line; an error is one ``error:`` line, exit 1."""
    try:
        print(json.dumps(probe()))
    except Exception as exc:
        print(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
