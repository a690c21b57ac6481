"""The embedded local runtime: the whole SAM application in one process, on moto. Never deployed."""
