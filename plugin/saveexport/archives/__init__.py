"""The archive analyser: reads save and export archives, streaming; needs no engine.

Names are imported on first use, so that `inspect --metadata` (archives/metadata.py) pays for none of
them. `flatten` and `verify` are both functions and modules: importing the module would set the
package's attribute to it, so the package keeps the functions under those names (the modules stay
importable: `from saveexport.archives.verify import Violation`).
"""

import sys
import types
from importlib import import_module

_WHERE = {"compare": "diff", "decompose": "diff", "flatten": "flatten", "LEGACY": "reader", "OCI": "reader",
          "ROOTFS": "reader", "Archive": "reader", "Image": "reader", "Layer": "reader", "Violation": "verify",
          "verify": "verify"}

__all__ = sorted(_WHERE)


class _Package(types.ModuleType):
    def __getattr__(self, name: str):
        if name not in _WHERE:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(import_module(f".{_WHERE[name]}", self.__name__), name)
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value) -> None:
        if name in ("flatten", "verify") and isinstance(value, types.ModuleType):
            return  # the import system announcing the submodule: the name stays the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
