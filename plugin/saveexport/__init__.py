"""saveexport: what `docker save`/`load` and `docker export`/`import` really do, proved on real engines."""


def __getattr__(name: str):
    """`__version__` on first use: importlib.metadata costs a CLI call ~60 ms it rarely needs."""
    if name != "__version__":
        raise AttributeError(f"module 'saveexport' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        value = version("saveexport")
    except PackageNotFoundError:  # running from a source tree that was not installed
        value = "0+unknown"
    globals()["__version__"] = value
    return value
