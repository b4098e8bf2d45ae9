"""The script runtime: what user scripts import.

- :mod:`lakekit.progress`: ``report(epoch=1, loss=0.1)`` shows progress on the running task.
- :mod:`lakekit.modelrec`: save a trained network as a model record in the lake, and load it.
- :mod:`lakekit.training`: the training loop the MNIST example scripts share.

Importing ``lakekit`` (or ``progress`` and ``modelrec``) imports neither FastAPI nor torch;
torch is imported when a model is written or loaded.
"""
