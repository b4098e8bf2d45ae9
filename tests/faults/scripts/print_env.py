"""Prints its whole environment into its log (a hostile script hunting for keys)."""

import os


def run(input_path, output_path, params):
    for name, value in sorted(os.environ.items()):
        print(f"{name}={value}")
    return {"names": sorted(os.environ)}
