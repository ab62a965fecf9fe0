"""One module per command of ``python main.py``; each registers itself on ``cli.app.app``."""
