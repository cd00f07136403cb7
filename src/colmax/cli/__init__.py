"""The ``colmax`` command line (see ``main.py``)."""
