"""The `mxflow` command line. Never deployed."""
