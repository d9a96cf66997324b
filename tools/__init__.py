"""The `soundlens` command line: thin commands over the library packages."""
