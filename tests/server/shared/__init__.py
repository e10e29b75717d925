"""A package, so that pytest tears the package-scoped server of conftest.py down when its last test ends: in a
plain folder, a package-scoped fixture lives until the session ends."""
