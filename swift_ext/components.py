"""Named, parametrised components: the one mechanism behind ``name:key=value`` for rewards, callbacks,
metrics and CHORD schedules.

ms-swift builds a reward as ``cls(args=...)`` and a callback as ``cls(args, trainer)``, with no way to pass
parameters, so swift-ext puts them in the name. :func:`configure` turns a spec into a class: the registered
class with the parameters bound (checked now, before any training starts), named after the spelling given
(ms-swift logs a reward under its class name, so two configurations log apart), and pickled by its spec.

Named configurations (aliases) come from the ``SWIFT_EXT_CONFIG`` YAML/JSON file, read once per process::

    rewards:
      strict_iou: {reward: iou, threshold: 0.75}

Example::

    >>> cls = configure("reward", "random:seed=1")
    >>> cls.__name__, cls._bound_params
    ('random:seed=1', {'seed': 1})
"""

from __future__ import annotations

import copyreg
import os
from typing import Any, ClassVar, Dict, Optional, Tuple

from . import plugins
from .errors import ConfigError, ParamError, PluginError
from .io import load_mapping
from .params import Param, bind, bind_given, format_spec, parse_spec

CONFIG_ENV = "SWIFT_EXT_CONFIG"
#: the section of the SWIFT_EXT_CONFIG file holding each kind's aliases, and the key naming the base
ALIAS_SECTIONS = {"reward": ("rewards", "reward"), "callback": ("callbacks", "callback"),
                  "metric": ("metrics", "metric"), "schedule": ("schedules", "schedule"),
                  "tool": ("tools", "tool")}


class Component:
    """Base of the parametrised kinds: declared ``params``, bound once in :meth:`bind_params`, then
    :meth:`setup` checks combinations and precomputes (raise ParamError there)."""

    kind: ClassVar[str] = ""
    name: ClassVar[str] = ""
    params: ClassVar[Dict[str, Param]] = {}
    #: parameters bound by a parametrised name (set on the class :func:`configure` makes)
    _bound_params: ClassVar[Dict[str, Any]] = {}
    #: (kind, spec, alias) of a configured class, so instances pickle by spec
    _spec: ClassVar[Optional[Tuple[str, str, Optional[str]]]] = None
    #: the kind of component a *wrapping* component holds: its spec is ``NAME:INNER``, where ``INNER`` is an
    #: ordinary spec of that kind (the metric ``reward:length_budget:max_tokens=64`` wraps the reward spec
    #: ``length_budget:max_tokens=64``). :func:`configure` parses ``INNER`` once, with that kind's aliases, and
    #: binds its parameters against :meth:`wrap`'s class (the inner component's parameters and the wrapper's own).
    wraps: ClassVar[str] = ""

    @classmethod
    def wrap(cls, name: str) -> type:
        """The class of this wrapping component around the ``wraps`` component called ``name`` (one class
        per name; only for classes that set ``wraps``)."""
        raise NotImplementedError(f"{cls.__name__} wraps no other component")

    @classmethod
    def declared_params(cls) -> Dict[str, Param]:
        """The parameters a spec may set (``params``; a subclass may add others it passes on)."""
        return cls.params

    @classmethod
    def bound_config(cls) -> Dict[str, Any]:
        """Every declared parameter's value on this class: the defaults, under the values a spec bound
        (checked and coerced once, by :func:`configure`)."""
        got = cls.__dict__.get("_config")
        if got is None:
            label = cls.name or cls.__name__
            got = bind(cls.declared_params(), dict(cls._bound_params), owner=f"{cls.kind} {label}")
            cls._config = got
        return got

    def bind_params(self, params: Dict[str, Any]) -> None:
        """The class's bound configuration, with ``params`` (constructor keywords) checked over it; values
        the spec bound are not coerced again."""
        config = dict(type(self).bound_config())
        if params:
            label = self.name or type(self).__name__
            config.update(bind_given(self.declared_params(), params, owner=f"{self.kind} {label}"))
        self._given = dict(params)
        self.config = config
        for key, value in config.items():
            setattr(self, key, value)

    def setup(self) -> None:
        """Check parameter combinations and precompute; raise ParamError for bad settings."""

    def reduce_kwargs(self) -> Dict[str, Any]:
        """Constructor arguments that rebuild this instance from its class (pickling): the parameters the
        constructor was given."""
        return dict(self.__dict__.get("_given") or {})

    def __reduce__(self):
        if not isinstance(type(self), Configured):
            return super().__reduce__()
        return _instantiate, (type(self), self.reduce_kwargs())


def _instantiate(cls: type, kwargs: Dict[str, Any]) -> Any:
    return cls(**kwargs)


# -- configured classes -----------------------------------------------------------------------------
class Configured(type):
    """Metaclass of the classes :func:`configure` makes. Such a class is named after its spec (not an
    importable name), so it pickles *by spec*: ``pickle`` stores ``(kind, spec, alias, extra bases)`` and
    loading calls :func:`configure` again, in this process or a fresh one (a worker, a Ray actor, a
    spawn-based data loader). ``copy.deepcopy`` returns the class itself, as for any class."""

    _swift_ext_key: Tuple[str, str, Optional[str], Tuple[type, ...]]


_METAS: Dict[type, type] = {type: Configured}


def _configured_meta(meta: type) -> type:
    """:class:`Configured` combined with a registered class's own metaclass (``ABCMeta``, say)."""
    got = _METAS.get(meta)
    if got is None:
        got = _METAS[meta] = type(f"Configured{meta.__name__}", (Configured, meta), {})
        copyreg.pickle(got, _reduce_configured)
    return got


def _reduce_configured(cls: type):
    return _reconfigure, cls._swift_ext_key


def _reconfigure(kind: str, spec: str, alias: Optional[str], bases: Tuple[type, ...] = ()) -> type:
    return configure(kind, spec, alias=alias, bases=bases)


copyreg.pickle(Configured, _reduce_configured)


def check_component(name: str, cls: Any) -> None:
    """What the plugin host checks of a registered component class: its ``name`` is the registered name
    (or unset), and every declared default passes its own checks."""
    if not (isinstance(cls, type) and issubclass(cls, Component)):
        return
    if cls.name and cls.name != name:
        raise PluginError(f"{cls.kind or 'component'} class {cls.__name__} has name={cls.name!r} but was "
                          f"registered as {name!r}")
    for key, param in cls.params.items():
        if param.default is not None:
            param.coerce(f"{name}.{key}", param.default)


def check_callback(name: str, obj: Any) -> None:
    """A callback is any class ms-swift can build as ``cls(args, trainer)``; swift-ext's own are components."""
    if not isinstance(obj, type):
        raise PluginError(f"callback {name!r} must be a class, got {obj!r}")
    check_component(name, obj)


# -- aliases --------------------------------------------------------------------------------------
_ALIAS_CACHE: Dict[Tuple[str, int, int], Dict[str, Dict[str, str]]] = {}


def aliases(kind: str = "reward", path: Optional[str] = None) -> Dict[str, str]:
    """``{alias: spec}`` of one kind from the ``SWIFT_EXT_CONFIG`` file (read once per file version)."""
    path = path or os.environ.get(CONFIG_ENV)
    if not path:
        return {}
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{CONFIG_ENV}={path}: cannot read ({exc.strerror})") from None
    key = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    if key not in _ALIAS_CACHE:
        _ALIAS_CACHE[key] = _read_aliases(path)
    return _ALIAS_CACHE[key].get(kind, {})


def _read_aliases(path: str) -> Dict[str, Dict[str, str]]:
    data = load_mapping(path)
    out: Dict[str, Dict[str, str]] = {}
    for kind, (section, base_key) in ALIAS_SECTIONS.items():
        entries = data.get(section) or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"{path}: '{section}:' must map alias names to settings, got {type(entries).__name__}")
        for alias, cfg in entries.items():
            if not isinstance(cfg, dict) or base_key not in cfg:
                raise ConfigError(f"{path}: {section}.{alias} needs a '{base_key}:' key naming a registered {kind}")
            cfg = dict(cfg)
            out.setdefault(kind, {})[str(alias)] = format_spec(str(cfg.pop(base_key)), cfg)
    return out


# -- specs ----------------------------------------------------------------------------------------
def resolve_spec(kind: str, spec: str) -> Tuple[str, Dict[str, str]]:
    """``(registered name, raw parameters)`` of a spec, an alias expanded (its parameters under the spec's)."""
    name, raw = parse_spec(spec)
    known = aliases(kind)
    if name in known and name not in plugins.registry(kind):
        base_name, base_raw = parse_spec(known[name])
        return base_name, {**base_raw, **raw}
    return name, raw


def _wrapper(kind: str, spec: str) -> Optional[Tuple[str, type, str]]:
    """``(wrapper name, wrapper class, inner spec)`` when ``spec`` is ``NAME:INNER`` and the registered ``NAME``
    is a wrapping component (:attr:`Component.wraps`), else None."""
    if not isinstance(spec, str):
        return None
    head, sep, inner = spec.strip().partition(":")
    head = head.strip()
    registry = plugins.registry(kind)
    if not sep or head not in registry:
        return None
    obj = registry.get(head)
    if isinstance(obj, type) and issubclass(obj, Component) and obj.wraps:
        return head, obj, inner
    return None


def _find(kind: str, spec: str, expand_alias: bool = True) -> Tuple[str, Any, Any, Dict[str, str], str]:
    """``(registered name, registered object, class to configure, raw parameters, label)`` of a spec: the one
    place a spec is parsed (:func:`swift_ext.params.parse_spec`, once; the inner spec of a wrapping component
    once, by its own kind's rules)."""
    wrapped = _wrapper(kind, spec)
    if wrapped is not None:
        head, wrapper, inner = wrapped
        inner_name, raw = resolve_spec(wrapper.wraps, inner)
        return head, wrapper, wrapper.wrap(inner_name), raw, f"{head}:{inner_name}"
    name, raw = parse_spec(spec)
    known = aliases(kind) if expand_alias else {}
    if name in known and name not in plugins.registry(kind):  # an alias: its spec, the given parameters over it
        base_name, registered, obj, base_raw, label = _find(kind, known[name], expand_alias=False)
        return base_name, registered, obj, {**base_raw, **raw}, label
    obj = plugins.registry(kind).get(name)
    return name, obj, obj, raw, name


def _declared(obj: Any) -> Dict[str, Param]:
    return obj.declared_params() if isinstance(obj, type) and issubclass(obj, Component) \
        else getattr(obj, "params", {})


def lookup(kind: str, spec: str, given: Optional[Dict[str, Any]] = None) \
        -> Tuple[str, Any, Dict[str, Any], Dict[str, str]]:
    """``(name, registered object, parameters, raw)`` for a spec: every declared parameter bound, the spec's
    own (``raw``) over ``given`` (defaults from the caller, e.g. a run's ``--chord_mu_*`` values) over the
    declared defaults. A bad value raises ParamError naming the component and the parameter. For a wrapping
    component (``reward:think_format``) the object is :meth:`Component.wrap`'s class."""
    name, _, obj, raw, label = _find(kind, spec)
    return name, obj, bind(_declared(obj), {**(given or {}), **raw}, owner=f"{kind} {label}"), raw


#: (kind, spec, alias, extra bases) -> (registered object, aliases of the kind, configured class)
_CONFIGURED: Dict[Tuple[str, str, Optional[str], Tuple[type, ...]], Tuple[Any, Dict[str, str], Any]] = {}


def configure(kind: str, spec: str, *, alias: Optional[str] = None, bases: Tuple[type, ...] = ()) -> type:
    """The class for ``spec`` (``name`` or ``name:key=value,...``, or an alias) with its parameters bound and
    checked now; named ``alias or spec``. A plain registered name gives a subclass all the same, so
    whatever ms-swift instantiates pickles by its spec.

    One class per ``(kind, spec, alias, bases)``: the spec is parsed and checked once, the same class comes
    back on every later call (while the registry and the aliases file are unchanged). ``bases`` are extra
    base classes the caller needs (ms-swift's ``ORM``: :func:`swift_ext.bridge.rewards.swift_reward_class`);
    they must be importable by name, since the class pickles by ``(kind, spec, alias, bases)``."""
    key = (kind, spec, alias, tuple(bases))
    known = aliases(kind)
    cached = _CONFIGURED.get(key)
    if cached is not None:
        registered, cached_aliases, cls = cached
        name = cls.__dict__.get("_registered_name") if isinstance(cls, type) else None
        if cached_aliases == known and name is not None and plugins.registry(kind).get(name) is registered:
            return cls
    name, registered, obj, raw, label_ = _find(kind, spec)
    if not (isinstance(obj, type) and issubclass(obj, Component)):
        if raw:
            raise ParamError(f"{kind} {name!r} takes no parameters (it is not a swift_ext component)")
        return obj
    params = bind(_declared(obj), raw, owner=f"{kind} {label_}")
    bound = {k: v for k, v in params.items() if k in raw}
    label = alias or spec
    extra = tuple(b for b in bases if not issubclass(obj, b))
    meta = _configured_meta(type(obj))
    cls = meta(label, (obj, *extra), {
        "_bound_params": bound, "_config": params, "_spec": (kind, spec, alias), "_registered_name": name,
        "__module__": obj.__module__, "__qualname__": label, "__doc__": obj.__doc__})
    cls._swift_ext_key = key
    _CONFIGURED[key] = (registered, known, cls)
    return cls


__all__ = ["Component", "Configured", "configure", "lookup", "resolve_spec", "aliases", "CONFIG_ENV", "ParamError"]
