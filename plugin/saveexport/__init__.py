"""saveexport: what `docker save`/`load` and `docker export`/`import` really do, proved on real engines."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("saveexport")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
