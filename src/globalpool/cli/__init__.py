"""The ``globalpool`` command line. Nothing else in the package imports this."""
