"""Slow imports happen off the GUI thread: pandas (napari's feature tables)
and matplotlib (the Training dock's curves) froze the viewer for 0.6 s and
0.4 s when the GUI thread imported them (issue 9)."""

from __future__ import annotations

import subprocess
import sys

# Record the thread that imports each watched module; open the Training dock
# and wait for its curves.
OPEN_TRAINING = """
import sys, threading, time
import importlib.abc

WATCHED = {"pandas", "matplotlib"}
where = {}

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in WATCHED and name not in where:
            where[name] = threading.current_thread().name
        return None

sys.meta_path.insert(0, Watch())
import napari
from qtpy.QtWidgets import QApplication

assert not WATCHED & set(sys.modules), "imported before the dock"
viewer = napari.Viewer(show=False)
_, widget = viewer.window.add_plugin_dock_widget("napari-digits", "Training")
end = time.monotonic() + 60
while widget._curves is None and time.monotonic() < end:
    QApplication.instance().processEvents()
    time.sleep(0.01)
print(where.get("pandas"), where.get("matplotlib"), widget._curves is not None, sep="|")
viewer.close()
"""


def test_a_dock_imports_pandas_and_matplotlib_in_the_background():
    done = subprocess.run(
        [sys.executable, "-c", OPEN_TRAINING], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    pandas, matplotlib, curves = done.stdout.splitlines()[-1].split("|")
    assert pandas == matplotlib == "napari-digits imports"
    assert curves == "True"
