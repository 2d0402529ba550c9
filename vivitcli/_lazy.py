"""Module-level lazy exports (PEP 562), so importing a package never pulls in torch or av before it must."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, mapping: dict[str, str], namespace: dict):
    """(__getattr__, __dir__) for `package`: each name in `mapping` is imported from its module on first
    access and then stored in `namespace` (the package's globals), so later lookups are plain attributes."""

    def __getattr__(name: str):
        module = mapping.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__():
        return sorted(namespace.get("__all__", mapping))

    return __getattr__, __dir__
