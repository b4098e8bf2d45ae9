"""The model server's protocols, as thin layers over one runner (KServe's ``protocol/``).

``dataplane.py`` has one method per operation; ``rest/`` translates HTTP to it: the platform's
own ``/health``, ``/v1/...`` and ``/predict`` (``v1_endpoints``), and the Open Inference
Protocol v2 (``v2_endpoints``, shapes in ``v2_datamodels``, tensors in ``infer_type``).
"""
