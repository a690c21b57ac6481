"""`make bench`: every benchmark section, merged into one JSON document on stdout."""
