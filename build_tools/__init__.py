"""Build-time helpers, imported only by setup.py."""
