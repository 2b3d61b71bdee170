"""CRC32C from the crc32c package's C extension, loaded without the package's __init__.

`import crc32c` runs an __init__ that reads the package's own version through
importlib.metadata, and importing that (email, zipfile, csv, pathlib, socket) cost
0.1 CPU s here: a quarter of a nothing-changed backup, which hashes only the few
small files every backup uploads again. The function itself lives in the extension
module `crc32c._crc32c`, which needs nothing from its package; it is found next to
the package and loaded under its own name, so a later `import crc32c` reuses it.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from types import ModuleType

_EXT = "crc32c._crc32c"


def _extension() -> ModuleType:
    loaded = sys.modules.get(_EXT)
    if loaded is not None:
        return loaded
    package = importlib.util.find_spec("crc32c")  # a top-level name: found, not imported
    for where in (package.submodule_search_locations or []) if package is not None else []:
        finder = importlib.machinery.FileFinder(
            where, (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES)
        )
        spec = finder.find_spec(_EXT)
        if spec is not None and spec.loader is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            # Two threads may get here at once: loading a C extension twice is harmless
            # (the interpreter hands out the module it initialised first).
            sys.modules.setdefault(_EXT, module)
            return sys.modules[_EXT]
    import crc32c  # a layout without the extension beside the package: its own way

    return crc32c


def crc32c(data: bytes | bytearray | memoryview, value: int = 0) -> int:
    """The CRC32C of data, continuing from value (crc32c.crc32c; releases the GIL on big buffers)."""
    return int(_extension().crc32c(data, value))
