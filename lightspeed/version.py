"""
lightspeed's version, in a module of its own: setuptools reads it without
importing the package, and ``twistd lightspeed --version`` imports nothing
else for it.
"""

__version__ = "0.1.0"
