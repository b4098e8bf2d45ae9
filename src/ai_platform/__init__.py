"""The AI Platform: what users call. Ingestion and training tasks, inference services.

It reaches the Data Platform only over HTTP; data itself stays in Lance on shared storage.
"""
