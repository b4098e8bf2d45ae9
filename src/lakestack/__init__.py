"""Runs the whole platform on one machine: the launcher (``make up``) and the MNIST demo
(``make demo``). The one package that imports both services."""
