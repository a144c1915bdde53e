"""Typed, frozen configs and the overrides users give them.

A recipe's hyperparameters are a frozen dataclass. ``bnlab run --set key=value`` and
``--config file.yaml`` go through :func:`apply_overrides`, which checks every key and value
against the dataclass fields, so a typo is a one-line :class:`ConfigError` naming the key
and the valid choices (the CLI prints it and exits with status 2), never a silently ignored
setting or a traceback. Supported field types: ``int``, ``float``, ``bool``, ``str``,
``Literal[...]``, ``tuple[X, ...]`` / ``tuple[X, Y]``, ``list[X]``, ``dict``,
``X | None``, nested dataclasses (addressed with dotted keys, ``model.width=64``) and
``Annotated[X, Range(...)]`` (:data:`PosInt`, :data:`NonNegInt`, :data:`PosFloat`,
:data:`Probability`) and ``Annotated[tuple[X, ...], MinItems(n)]``, whose bounds are
checked on every override and by :func:`validate_config`. A recipe's grid axes (``lr``,
``norm``) take a list of values through :func:`apply_sweep_overrides`.

YAML (a ``--config`` file, a ``--set`` value of a mapping field) is read with limits: at
most :data:`MAX_YAML_BYTES` of a regular file, expanding to at most
:data:`MAX_YAML_NODES` values with every alias counted where it is used, so an "alias
bomb" (a few lines that expand to billions of values) is refused before anything walks
it. Messages quote at most a short excerpt of any value or key.

Example:
    >>> from dataclasses import dataclass
    >>> from typing import Literal
    >>> @dataclass(frozen=True)
    ... class Cfg:
    ...     lr: float = 0.1
    ...     norm: Literal["bn", "none"] = "bn"
    >>> apply_overrides(Cfg(), ["lr=0.5", "norm=none"])
    Cfg(lr=0.5, norm='none')
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

import yaml

from bnlab.errors import UserError

__all__ = [
    "LABELS",
    "MAX_YAML_BYTES",
    "MAX_YAML_NODES",
    "ConfigError",
    "MinItems",
    "NonNegInt",
    "PosFloat",
    "PosInt",
    "Probability",
    "Range",
    "apply_overrides",
    "apply_sweep_overrides",
    "config_from_dict",
    "config_to_dict",
    "load_yaml",
    "validate_config",
]

C = TypeVar("C")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", "~"}
#: The largest YAML document read (a config is a few hundred bytes).
MAX_YAML_BYTES = 1 << 20
#: The most values a YAML document may expand to, each alias counted at every use.
MAX_YAML_NODES = 100_000
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it


class ConfigError(UserError):
    """A bad override: unknown key, wrong type or invalid choice (one-line message)."""


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a numeric field: ``Annotated[int, Range(1)]`` is an int >= 1.

    Attributes:
        low: the smallest allowed value (``None``: unbounded).
        high: the largest allowed value (``None``: unbounded).
        open_low: exclude ``low`` itself (``PosFloat`` is ``> 0``).
    """

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def problem(self, value: float) -> str | None:
        """Why ``value`` is out of range, or ``None`` when it is fine."""
        if isinstance(value, float) and not math.isfinite(value):
            return "a finite number"
        too_low = self.low is not None and (
            value <= self.low if self.open_low else value < self.low)
        too_high = self.high is not None and value > self.high
        return str(self) if too_low or too_high else None

    def __str__(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"<= {self.high:g}")
        return " and ".join(parts) or "any number"


@dataclasses.dataclass(frozen=True)
class MinItems:
    """The fewest items of a sequence field: ``Annotated[tuple[PosInt, ...], MinItems(1)]``."""

    n: int

    def problem(self, value: Any) -> str | None:
        """Why ``value`` has too few items, or ``None`` when it is fine."""
        return None if len(value) >= self.n else str(self)

    def __str__(self) -> str:
        return f"with at least {self.n} item{'' if self.n == 1 else 's'}"


_BOUNDS = (Range, MinItems)

#: An int >= 1 (steps, batch sizes, widths, periods that must run).
PosInt = Annotated[int, Range(1)]
#: An int >= 0 (a period where 0 means never).
NonNegInt = Annotated[int, Range(0)]
#: A float > 0 (learning rates, scales).
PosFloat = Annotated[float, Range(0, open_low=True)]
#: A float in [0, 1].
Probability = Annotated[float, Range(0, 1)]

#: Run labels set by the harness from the command line, never config fields.
LABELS = {"scale": "--scale", "data": "--data", "seed": "--seeds", "device": "--device"}


class _BadValue(Exception):
    """Internal: a value does not fit a type; ``expected`` says what would."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        ranges = [str(m) for m in tp.__metadata__ if isinstance(m, _BOUNDS)]
        return " ".join([_type_name(args[0]), *ranges])
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if tp is type(None):
        return "none"
    if origin in (tuple, list) and args and (origin is list or args[-1] is Ellipsis):
        return f"a list of ({_type_name(args[0])})"
    if origin is tuple and args:
        return "(" + ", ".join(_type_name(a) for a in args) + ")"
    return getattr(tp, "__name__", str(tp)) if origin is None else str(tp).replace("typing.", "")


# -- parsing one value against one type ---------------------------------------------------


def _parse_scalar(tp: type, value: Any, text: bool) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if text and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if text:
            try:
                return int(value.strip())
            except ValueError:
                pass
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if text:
            try:
                return float(value.strip())
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
    else:
        raise _BadValue(f"{_type_name(tp)} (a field type overrides do not support)")
    raise _BadValue(_type_name(tp))


def _split_items(value: str) -> list[str]:
    """``"1,2"``, ``"[1, 2]"`` or ``"(1, 2)"`` -> ``["1", "2"]``; ``""``/``"()"`` -> ``[]``."""
    body = value.strip()
    if body[:1] + body[-1:] in ("[]", "()"):
        body = body[1:-1]
    return [item.strip() for item in body.split(",")] if body.strip() else []


def _parse_sequence(tp: Any, value: Any, text: bool) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    items = _split_items(value) if text and isinstance(value, str) else value
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise _BadValue(_type_name(tp))
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(items) != len(args):
            raise _BadValue(f"{_type_name(tp)} ({len(args)} items)")
        types_ = list(args)
    else:
        types_ = [args[0] if args else Any] * len(items)
    parsed = []
    for elem, v in zip(types_, items, strict=True):
        try:
            parsed.append(v if elem is Any else _parse(elem, v, text))
        except _BadValue as bad:  # name the whole type, and which item is wrong
            raise _BadValue(f"{_type_name(tp)} ({_excerpt(v)} is not {bad.expected})"
                            ) from None
    return tuple(parsed) if origin is tuple or tp is tuple else parsed


def _parse(tp: Any, value: Any, text: bool) -> Any:
    """``value`` (a ``str`` from ``--set`` when ``text``, else a YAML value) as type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Annotated:
        parsed = _parse(args[0], value, text)
        for bound in (m for m in tp.__metadata__ if isinstance(m, _BOUNDS)):
            if bound.problem(parsed) is not None:
                raise _BadValue(_type_name(tp))
        return parsed
    if tp is Any:
        return load_yaml(value, "a --set value") if text else value
    if origin is Literal:
        for choice in args:
            if value == choice or (text and str(choice) == value.strip()):
                return choice
        raise _BadValue(_type_name(tp))
    if origin in (Union, types.UnionType):
        if type(None) in args and (value is None or (text and value.strip().lower() in _NONE)):
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _parse(option, value, text)
            except _BadValue:
                continue
        raise _BadValue(_type_name(tp))
    if origin in (tuple, list) or tp in (tuple, list):
        return _parse_sequence(tp, value, text)
    if origin is dict or tp is dict:
        mapping = load_yaml(value, "a --set value") if text else value
        if not isinstance(mapping, Mapping):
            raise _BadValue("a mapping")
        return dict(mapping)
    return _parse_scalar(tp, value, text)


# -- walking dotted keys through nested dataclasses --------------------------------------


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    keys = []
    for name, tp in _fields(cls).items():
        if dataclasses.is_dataclass(tp):
            keys += _leaf_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


class _Applier:
    """Applies ``(dotted key, value)`` pairs to one config, with its name for messages."""

    def __init__(self, cfg: Any, name: str) -> None:
        self.root_cls, self.name = type(cfg), name

    def unknown(self, key: str) -> ConfigError:
        if key in LABELS:
            return ConfigError(f"{_excerpt(key)} is not a config field of {self.name}: set it with "
                               f"{LABELS[key]} (it labels the runs)")
        valid = ", ".join(_leaf_keys(self.root_cls))
        return ConfigError(f"unknown key {_excerpt(key)} for {self.name}; valid keys: {valid}")

    def assign(self, cfg: Any, path: list[str], value: Any, text: bool, done: str = "") -> Any:
        head, full = path[0], done + path[0]
        fields = _fields(type(cfg))
        if head not in fields:
            raise self.unknown(done + ".".join(path))
        tp = fields[head]
        if dataclasses.is_dataclass(tp):
            return self._assign_group(cfg, head, tp, path, value, text, full)
        if len(path) > 1:
            raise self.unknown(done + ".".join(path))
        return dataclasses.replace(cfg, **{head: _parse_field(tp, value, text, full)})

    def _assign_group(self, cfg: Any, head: str, tp: type, path: list[str], value: Any,
                      text: bool, full: str) -> Any:
        sub = getattr(cfg, head)
        if len(path) > 1:
            sub = self.assign(sub, path[1:], value, text, full + ".")
        elif isinstance(value, Mapping) and not text:  # a YAML block for a nested config
            for k, v in value.items():
                sub = self.assign(sub, str(k).split("."), v, text, full + ".")
        else:
            keys = ", ".join(_leaf_keys(tp, full + "."))
            raise ConfigError(f"{full!r} is a group of settings; set one of: {keys}")
        return dataclasses.replace(cfg, **{head: sub})


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()  # keyword arguments need Python 3.12
    short.maxlevel, short.maxstring, short.maxother, short.maxlong = 3, 48, 48, 40
    short.maxtuple = short.maxlist = short.maxdict = short.maxset = short.maxfrozenset = 4
    return short


_SHORT = _short_repr()


def _excerpt(value: Any, limit: int = 60) -> str:
    """A short ``repr`` of ``value``: a message never echoes (or even builds) a huge one.

    :mod:`reprlib` stops at a few items per level and a few levels, so the cost is
    bounded even for a structure that shares its parts billions of times.
    """
    try:
        text = _SHORT.repr(value)
    except ValueError:  # an int past Python's 4300-digit str() limit
        text = f"<a {type(value).__name__} too long to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _BadYaml(Exception):
    """Internal: a YAML document that is well-formed but refused (why in the message)."""


def _expanded_size(root: yaml.Node, cap: int) -> int:
    """How many nodes ``root`` expands to (aliases counted at each use), up to ``cap + 1``.

    Iterative (a deep document cannot overflow the stack) and memoized per node, so a
    shared node is sized once. Raises :class:`_BadYaml` for a recursive alias.
    """
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        kids = _children(node)
        if children_done:
            open_.discard(id(node))
            sizes[id(node)] = min(cap + 1, 1 + sum(sizes[id(k)] for k in kids))
            continue
        if id(node) in open_:
            raise _BadYaml("it holds a recursive alias (a value that contains itself)")
        open_.add(id(node))
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in sizes)
        for k in kids:
            if id(k) in open_:
                raise _BadYaml("it holds a recursive alias (a value that contains itself)")
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str, what: str) -> Any:
    """Parse one YAML document safely and within limits.

    Args:
        text: the document.
        what: what it is, for messages (``"config file 'c.yaml'"``).

    Raises:
        ConfigError: invalid YAML, larger than :data:`MAX_YAML_BYTES`, expanding to more
            than :data:`MAX_YAML_NODES` values, recursive or too deeply nested.
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"{what} is larger than {MAX_YAML_BYTES // 1024} KiB; a config is "
                          "a few lines of key: value")
    loader = _YamlLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, MAX_YAML_NODES) > MAX_YAML_NODES:
            raise _BadYaml(f"it expands to more than {MAX_YAML_NODES:,} values (aliases "
                           "counted at each use); write the values out")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"cannot parse {what}{at}: {_excerpt(problem)[1:-1]}") from None
    except _BadYaml as exc:
        raise ConfigError(f"cannot use {what}: {exc}") from None
    except ValueError as exc:  # a value the constructor cannot build (a 5000-digit int)
        raise ConfigError(f"cannot use {what}: {_excerpt(str(exc))[1:-1]}") from None
    except RecursionError:
        raise ConfigError(f"cannot parse {what}: it is nested too deeply") from None
    finally:
        loader.dispose()


def _parse_field(tp: Any, value: Any, text: bool, key: str) -> Any:
    try:
        return _parse(tp, value, text)
    except _BadValue as bad:
        raise ConfigError(f"bad value {_excerpt(value)} for {key!r}: expected {bad.expected}"
                          ) from None


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    what = f"config file {_excerpt(str(p))}"
    try:
        if not p.is_file():  # also refuses /dev/zero, a FIFO, a folder: never read forever
            raise ConfigError(f"{what} {'is not a regular file' if p.exists() else 'not found'}")
        with open(p, "rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} is not UTF-8 text") from None
    data = load_yaml(text, what)
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{what} must hold a mapping of key: value")
    return dict(data)


def _split_set(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"bad --set {_excerpt(item)}: expected key=value, e.g. lr=0.1")
    return key.strip(), value


def apply_overrides(
    cfg: C,
    sets: Sequence[str] = (),
    yaml_path: str | Path | None = None,
    *,
    name: str | None = None,
) -> C:
    """A copy of the frozen dataclass ``cfg`` with validated overrides applied.

    The YAML file is applied first, then every ``key=value`` of ``sets`` in order, so the
    command line wins. Nested dataclass fields take dotted keys (``model.width=64``) or a
    nested YAML block. ``--set`` values are parsed per the field type: ``int``, ``float``,
    ``bool`` (true/false/yes/no/on/off/1/0), ``str``, a ``Literal`` choice, a tuple or
    list as ``1,2,3`` or ``[1, 2, 3]``, ``none``/``null`` for an optional field.

    Args:
        cfg: a dataclass instance (normally frozen).
        sets: ``"key=value"`` strings.
        yaml_path: a YAML file holding a mapping of keys to values.
        name: the config's name in messages (e.g. the recipe); default the class name.

    Returns:
        The new config; ``cfg`` itself is not changed.

    Raises:
        ConfigError: one line naming the bad key and the valid keys, or the bad value and
            what the field expects.

    Example:
        >>> apply_overrides(cfg, ["lr=0.5"], "my.yaml", name="ioffe2015.mnist")  # doctest: +SKIP
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"apply_overrides needs a dataclass instance, got {type(cfg).__name__}")
    applier = _Applier(cfg, name or type(cfg).__name__)
    if yaml_path is not None:
        for key, value in _read_yaml(yaml_path).items():
            cfg = applier.assign(cfg, str(key).split("."), value, text=False)
    for item in sets:
        key, value = _split_set(item)
        cfg = applier.assign(cfg, key.split("."), value, text=True)
    return cfg


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config: nested configs as dicts, tuples as lists.

    Example:
        >>> config_to_dict(Cfg(lr=0.5))  # doctest: +SKIP
        {'lr': 0.5, 'norm': 'bn'}
    """
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"config_to_dict needs a dataclass instance, got {type(cfg).__name__}")
    return _plain(cfg)


def apply_sweep_overrides(
    cfg: C,
    axes: Mapping[str, Sequence[Any]],
    sets: Sequence[str] = (),
    yaml_path: str | Path | None = None,
    *,
    name: str | None = None,
) -> tuple[C, dict[str, tuple[Any, ...]]]:
    """Overrides for a sweep: grid axes take lists, every other key as :func:`apply_overrides`.

    A key that names an axis of ``axes`` (a config field swept over, such as ``lr``)
    replaces that axis's values: ``--set lr=0.1,0.5`` or a YAML list; each value is
    parsed and validated as the field's type (a ``Literal`` field accepts only its
    choices). Other keys change the shared config.

    Returns:
        The new config and the new axes.

    Raises:
        ConfigError: as :func:`apply_overrides`, and for an axis given no value.
    """
    grid = {k: tuple(v) for k, v in axes.items()}
    applier = _Applier(cfg, name or type(cfg).__name__)
    fields = _fields(type(cfg))
    pairs: list[tuple[str, Any, bool]] = []
    if yaml_path is not None:
        pairs += [(str(k), v, False) for k, v in _read_yaml(yaml_path).items()]
    pairs += [(*_split_set(item), True) for item in sets]
    for key, value, text in pairs:
        if key in grid:
            grid[key] = _parse_axis(fields[key], value, text, key)
        else:
            cfg = applier.assign(cfg, key.split("."), value, text=text)
    return cfg, grid


def _parse_axis(tp: Any, value: Any, text: bool, key: str) -> tuple[Any, ...]:
    items = value if isinstance(value, list | tuple) else [value]
    parsed = _parse_field(tuple[tp, ...], items if not text else value, text, key)
    if not parsed:
        raise ConfigError(f"{key!r} is swept over: give at least one value, e.g. {key}=0.1")
    return tuple(parsed)


def config_from_dict(cls: type[C], values: Mapping[str, Any], *, name: str | None = None) -> C:
    """Rebuild the typed config ``cls`` from its JSON form (lists back to tuples).

    Keys of ``values`` that are not fields of ``cls`` (run labels such as ``scale``) are
    ignored; a missing field takes its default. The result is validated.

    Raises:
        ConfigError: for a value that does not fit its field.
    """
    fields = _fields(cls)
    kwargs = {}
    for key, tp in fields.items():
        if key not in values:
            continue
        if dataclasses.is_dataclass(tp):
            kwargs[key] = config_from_dict(tp, values[key], name=name)
        else:
            kwargs[key] = _parse_field(tp, values[key], False, key)
    return validate_config(cls(**kwargs), name=name)


def validate_config(cfg: C, *, name: str | None = None) -> C:
    """Check every field of ``cfg`` (nested too) against its type's bounds; return ``cfg``.

    Raises:
        ConfigError: naming the first field out of range and what it expects.
    """
    for key, tp in _fields(type(cfg)).items():
        value = getattr(cfg, key)
        if dataclasses.is_dataclass(tp):
            validate_config(value, name=name)
            continue
        try:
            _parse(tp, _plain(value) if isinstance(value, tuple) else value, False)
        except _BadValue as bad:
            where = f" of {name}" if name else ""
            raise ConfigError(f"bad value {_excerpt(value)} for {key!r}{where}: expected "
                              f"{bad.expected}") from None
    return cfg
