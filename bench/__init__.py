"""``make bench``: the platform measured against the bare libraries, side by side, in one run.

Each area (``ingestion``, ``storage``, ``training``, ``serving``, ``overhead``, ``level2``) has
its own module; ``bench.run`` starts a private platform in a temp dir, runs the areas, prints a
table of ratios and writes ``bench/results/<name>.json`` and ``.md``.
"""
