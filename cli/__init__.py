"""The ``python main.py ...`` command line: the app, shared options, output, thin commands."""
