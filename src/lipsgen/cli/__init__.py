"""The ``lipsgen`` command line: a thin layer over the library."""
