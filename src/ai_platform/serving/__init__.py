"""Serving models from the lake: a generic predictor and the model server process."""
