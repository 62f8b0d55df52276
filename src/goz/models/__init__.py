"""ZSL models behind one interface, with a registry (timm-style).

>>> from goz import models
>>> models.list_models()            # every registered name
>>> model = models.create("eszsl", gamma=100.0)
>>> model.fit(training_data).scores(test_features, candidate_wnids)

Every module in this package registers its models on import; `list_models` and `create` import
them all, so adding a model is adding a module.
"""

from __future__ import annotations

import fnmatch
import importlib
import pkgutil

from goz.errors import GozError
from goz.models.base import TrainingData, ZSLModel

__all__ = ["TrainingData", "ZSLModel", "register_model", "list_models", "create", "select_hyperparameters"]

_REGISTRY: dict[str, type[ZSLModel]] = {}
_ALIASES: dict[str, str] = {}


def register_model(name: str, aliases: tuple[str, ...] = ()):
    """Class decorator: makes `create(name)` (and `create(alias)`) build this model."""
    def decorate(cls: type[ZSLModel]) -> type[ZSLModel]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls
        _ALIASES.update({alias: name for alias in aliases})
        return cls
    return decorate


def _import_all() -> None:
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching `pattern` (aliases are not listed: each model appears once)."""
    _import_all()
    return sorted(name for name in _REGISTRY if fnmatch.fnmatch(name, pattern))


def create(name: str, **hyperparameters) -> ZSLModel:
    _import_all()
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise GozError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name](**hyperparameters)


# Imported last: selection builds models through `create` above.
from goz.models.selection import select_hyperparameters  # noqa: E402
