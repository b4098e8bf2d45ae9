"""The script runtime: what user scripts import.

- :mod:`lakekit.progress`: ``report(epoch=1, loss=0.1)`` shows progress on the running task.
- :mod:`lakekit.datasets`: open the dataset a task received (``open_dataset``, ``read_table``,
  ``daft_io_config``) with the storage options the platform passed.
- :mod:`lakekit.models`: ``save_model`` (the network, its signature, labels, metrics, source),
  ``load_model``, ``check_model_record``.
- :mod:`lakekit.signature`: the inputs and outputs a model declares, and checks against them.
- :mod:`lakekit.modelrec`: the model record's layout (one Lance dataset per model).
- :mod:`lakekit.training`: the training loop the MNIST example scripts share (imports torch).

A script is a file with ``run(input_path, output_path, params) -> dict``; the guide is
``docs/writing-scripts.md``. Importing ``lakekit``, ``progress``, ``datasets``, ``models``,
``signature`` or ``modelrec`` imports neither FastAPI nor torch; torch is imported when a model
is saved or loaded.
"""
