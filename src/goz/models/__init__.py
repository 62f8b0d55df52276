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
import inspect
import pkgutil

from goz.errors import GozError
from goz.models.base import TrainingData, ZSLModel

__all__ = ["TrainingData", "ZSLModel", "register_model", "list_models", "create", "canonical_name", "model_class",
           "display_sorted"]

_REGISTRY: dict[str, type[ZSLModel]] = {}
_ALIASES: dict[str, str] = {}


def register_model(name: str, aliases: tuple[str, ...] = ()):
    """Class decorator: makes `create(name)` (and `create(alias)`) build this model."""
    def decorate(cls: type[ZSLModel]) -> type[ZSLModel]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        cls.name = name
        cls.aliases = tuple(aliases)
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


def hyperparameter_names(cls: type[ZSLModel]) -> set[str]:
    """The keyword arguments `cls(...)` accepts, following `**kwargs` passed on to base classes."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


def canonical_name(name: str) -> str:
    """The registered name of `name` or of its alias (`gcn2` -> `sgcn`); GozError if unknown."""
    _import_all()
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise GozError(f"unknown model {name!r}; registered models: {', '.join(list_models())}"
                       + (f" (aliases: {', '.join(sorted(_ALIASES))})" if _ALIASES else ""))
    return name


def model_class(name: str) -> type[ZSLModel]:
    """The class registered under `name` or its alias: its facts (display_order, uses_graph, budgets)."""
    return _REGISTRY[canonical_name(name)]


def display_sorted(names) -> list[str]:
    """Model names in table order: each class's `display_order`, then by name; unknown names last."""
    _import_all()
    return sorted(names, key=lambda n: (_REGISTRY[n].display_order if n in _REGISTRY else 1000, n))


def create(name: str, **hyperparameters) -> ZSLModel:
    name = canonical_name(name)
    cls = _REGISTRY[name]
    unknown = sorted(set(hyperparameters) - hyperparameter_names(cls))
    if unknown:
        raise GozError(f"model {name!r} has no hyper-parameter {', '.join(unknown)}; "
                       f"it takes: {', '.join(sorted(hyperparameter_names(cls)))}")
    return cls(**hyperparameters)
