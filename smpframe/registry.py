"""Finding a program class by name, so workers can build the same program.

A spec is a built-in app name (``"lasso"``), ``"package.module:Class"``, or
``"/path/to/file.py:Class"`` (for programs defined in a script). Only code the
worker's own Python can import is run: nothing executable crosses the wire.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path

from smpframe.errors import InputError
from smpframe.api import SMPProgram

BUILTIN_APPS = {
    "lasso": "smpframe.apps.lasso:Lasso",
    "logreg": "smpframe.apps.logreg:LogReg",
    "mf": "smpframe.apps.mf:MatrixFactorization",
    "lda": "smpframe.apps.lda:LDA",
    "kmeans": "smpframe.apps.kmeans:KMeans",
}


def resolve_program(spec: str) -> type[SMPProgram]:
    """The SMPProgram subclass named by ``spec``."""
    target = BUILTIN_APPS.get(spec, spec)
    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name:
        raise InputError(f"program {spec!r}: expected an app name ({', '.join(BUILTIN_APPS)}) "
                         "or module:Class")
    if module_name.endswith(".py"):
        path = Path(module_name).resolve()
        alias = "smpframe_user_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        module = sys.modules.get(alias)
        if module is None:
            if not path.is_file():
                raise InputError("program file not found", path=str(path))
            loader_spec = importlib.util.spec_from_file_location(alias, path)
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[alias] = module
            try:
                loader_spec.loader.exec_module(module)
            except Exception as exc:
                del sys.modules[alias]
                raise InputError(f"program {spec!r}: importing it raised {type(exc).__name__}: "
                                 f"{exc}", path=str(path)) from None
    else:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise InputError(f"program {spec!r}: cannot import {module_name}: "
                             f"{type(exc).__name__}: {exc}") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, SMPProgram)):
        raise InputError(f"program {spec!r}: {attr} is not an SMPProgram subclass")
    return cls


def program_spec(cls: type[SMPProgram]) -> str:
    """The spec a worker process can resolve back to ``cls``."""
    for name, target in BUILTIN_APPS.items():
        if target == f"{cls.__module__}:{cls.__qualname__}":
            return name
    module = sys.modules.get(cls.__module__)
    if cls.__module__ == "__main__" or cls.__module__.startswith("smpframe_user_"):
        path = getattr(module, "__file__", None)
        if path is None:
            raise InputError(f"{cls.__qualname__} is defined interactively; put it in a .py file "
                             "so worker processes can import it")
        return f"{Path(path).resolve()}:{cls.__qualname__}"
    if "<locals>" in cls.__qualname__:
        raise InputError(f"{cls.__qualname__} is defined inside a function; define it at module level")
    return f"{cls.__module__}:{cls.__qualname__}"
