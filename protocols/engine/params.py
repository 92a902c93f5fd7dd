"""Protocol parameters: declared once with unit, limits, default and help.

A protocol's ``Params`` is a plain dataclass whose fields are made with
:func:`param`; the metadata (unit, limits, choices, help, envelope check) rides in
the dataclass field's ``metadata`` so the CLI, the GUI form generator, the run file
and dry-run validation all read the same declaration.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_META_KEY = "rrambench"
_SCALARS = (bool, int, float, str)


class ParameterError(ValueError):
    """A parameter value is unknown, mistyped or outside its limits (names the parameter)."""


@dataclass(frozen=True)
class ParamSpec:
    """Everything declared about one parameter.

    ``kind`` is the scalar type (bool, int, float or str); ``is_list`` marks a
    list-valued parameter whose every element obeys ``limits`` and ``choices``.
    """

    name: str
    kind: type
    is_list: bool
    default: Any
    unit: str
    limits: tuple[float, float] | None
    choices: tuple[Any, ...] | None
    help: str
    envelope: str | None

    def describe(self) -> str:
        """One line for ``rrambench list``: default, unit, limits, choices and help."""
        default = format_value(self.default)
        text = f"{self.name} = {default}"
        if self.unit:
            text += f" {self.unit}"
        if self.limits is not None:
            text += f"  [{self.limits[0]:g} .. {self.limits[1]:g}]"
        if self.choices is not None:
            text += "  {" + ", ".join(str(c) for c in self.choices) + "}"
        if self.help:
            text += f"  {self.help}"
        return text


def param(
    default: Any,
    *,
    unit: str = "",
    limits: tuple[float, float] | None = None,
    help: str = "",
    choices: Sequence[Any] | None = None,
    envelope: str | None = None,
    expose: bool = True,
) -> Any:
    """Declare one protocol parameter as a dataclass field.

    ``default``: the value used when nothing is set (a list default is copied per
    instance). ``unit``: SI unit shown to users ("V", "s", "S"; "" if none).
    ``limits``: inclusive (lo, hi) bounds checked for numbers and list elements.
    ``choices``: allowed values. ``envelope``: name of a :class:`~instruments.limits.Limits`
    check (e.g. ``"read_bias"``) the value must also pass in dry-run and before a run.
    ``expose``: False for a setting of an algorithm's configuration that
    :func:`params_of` leaves out of the protocol parameters (protocols keep its default).
    """
    if limits is not None:
        lo, hi = limits
        if not lo <= hi:
            raise ValueError(f"limits must be (lo, hi) with lo <= hi, got {limits!r}")
    meta = {
        _META_KEY: {
            "unit": unit,
            "limits": None if limits is None else (float(limits[0]), float(limits[1])),
            "choices": None if choices is None else tuple(choices),
            "help": help,
            "envelope": envelope,
            "expose": expose,
        }
    }
    if isinstance(default, (list, tuple)):
        items = list(default)
        return dataclasses.field(default_factory=lambda: list(items), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def specs(params_cls: type) -> list[ParamSpec]:
    """The declared parameters of a ``Params`` dataclass, in declaration order."""
    hints = typing.get_type_hints(params_cls)
    out = []
    for f in dataclasses.fields(params_cls):
        kind, is_list = _scalar_type(hints[f.name], f"{params_cls.__qualname__}.{f.name}")
        meta = f.metadata.get(_META_KEY, {})
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        out.append(
            ParamSpec(
                name=f.name,
                kind=kind,
                is_list=is_list,
                default=default,
                unit=meta.get("unit", ""),
                limits=meta.get("limits"),
                choices=meta.get("choices"),
                help=meta.get("help", ""),
                envelope=meta.get("envelope"),
            )
        )
    return out


def params_of(config_cls: type, name: str, *, module: str) -> type:
    """A ``Params`` dataclass made from the exposed fields of a configuration dataclass.

    ``config_cls`` declares every field with :func:`param`; the fields left with
    ``expose=True`` become the parameters, in declaration order, with the same types,
    defaults, units, limits, help and envelope checks. Protocols subclass the result
    (``class Params(WriteVerifyParams)``) to add their own parameters. ``name`` and
    ``module``: where the class is bound (``__name__`` of the defining module).
    """
    hints = typing.get_type_hints(config_cls)
    fields = [
        (f.name, hints[f.name],
         dataclasses.field(default=f.default, default_factory=f.default_factory, metadata=f.metadata))
        for f in dataclasses.fields(config_cls) if f.metadata.get(_META_KEY, {}).get("expose", False)
    ]
    cls = dataclasses.make_dataclass(name, fields)
    cls.__module__ = module
    cls.__doc__ = f"The protocol parameters of :class:`{config_cls.__qualname__}` (its exposed fields)."
    return cls


def build(params_cls: type, values: Mapping[str, Any] | None = None) -> Any:
    """A validated ``Params`` instance from typed values (unknown names refused)."""
    values = dict(values or {})
    known = {s.name: s for s in specs(params_cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(known)}")
    checked = {name: coerce(known[name], value) for name, value in values.items()}
    instance = params_cls(**checked)
    validate(instance)
    return instance


def parse_assignments(params_cls: type, assignments: Sequence[str]) -> Any:
    """A validated ``Params`` instance from ``k=v`` strings (``--set``); lists use commas."""
    known = {s.name: s for s in specs(params_cls)}
    values: dict[str, Any] = {}
    for text in assignments:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"--set expects key=value, got {text!r}")
        if key not in known:
            raise ParameterError(f"unknown parameter {key!r}; known: {', '.join(known)}")
        values[key] = parse_text(known[key], raw.strip())
    return build(params_cls, values)


def parse_text(spec: ParamSpec, raw: str) -> Any:
    """Convert the text of one ``--set`` value to the parameter's type."""
    if spec.is_list:
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        return [_parse_scalar(spec, p) for p in parts]
    return _parse_scalar(spec, raw)


def coerce(spec: ParamSpec, value: Any) -> Any:
    """Check the Python type of ``value`` (ints are accepted for floats) and normalise it."""
    if spec.is_list:
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ParameterError(f"{spec.name} must be a list of {spec.kind.__name__}, got {value!r}")
        return [_coerce_scalar(spec, v) for v in value]
    return _coerce_scalar(spec, value)


def validate(instance: Any) -> None:
    """Check every field of a ``Params`` instance against its type, limits and choices."""
    for spec in specs(type(instance)):
        value = coerce(spec, getattr(instance, spec.name))
        items = value if spec.is_list else [value]
        if spec.is_list and not items:
            raise ParameterError(f"{spec.name} must not be empty")
        for item in items:
            if spec.choices is not None and item not in spec.choices:
                raise ParameterError(
                    f"{spec.name}={format_value(item)} is not one of {', '.join(map(str, spec.choices))}"
                )
            if spec.limits is not None:
                lo, hi = spec.limits
                if not lo <= item <= hi:
                    unit = f" {spec.unit}" if spec.unit else ""
                    raise ParameterError(
                        f"{spec.name}={format_value(item)}{unit} is outside its limits [{lo:g}, {hi:g}]{unit}"
                    )


def as_dict(instance: Any) -> dict[str, Any]:
    """JSON-serialisable values of a ``Params`` instance (for the run file)."""
    return {s.name: getattr(instance, s.name) for s in specs(type(instance))}


def format_value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# -- internals --------------------------------------------------------------------------
def _scalar_type(hint: Any, where: str) -> tuple[type, bool]:
    origin = typing.get_origin(hint)
    if origin in (list, tuple, Sequence):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if len(args) == 1 and args[0] in _SCALARS:
            return args[0], True
    elif hint in _SCALARS:
        return hint, False
    raise TypeError(f"{where}: parameter type must be bool, int, float, str or list of those, got {hint!r}")


def _parse_scalar(spec: ParamSpec, raw: str) -> Any:
    what = f"{spec.name}={raw!r}"
    if spec.kind is bool:
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ParameterError(f"{what}: expected a boolean (true/false)")
    if spec.kind is int:
        try:
            return int(raw, 0)
        except ValueError:
            raise ParameterError(f"{what}: expected an integer") from None
    if spec.kind is float:
        try:
            number = float(raw)
        except ValueError:
            raise ParameterError(f"{what}: expected a number") from None
        if not math.isfinite(number):
            raise ParameterError(f"{what}: expected a finite number")
        return number
    return raw


def _coerce_scalar(spec: ParamSpec, value: Any) -> Any:
    kind = spec.kind
    if isinstance(value, bool) or kind is bool:
        if kind is bool and isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise ParameterError(f"{spec.name} must be {kind.__name__}, got {value!r}")
    if kind is int and isinstance(value, numbers.Integral):
        return int(value)
    if kind is float and isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ParameterError(f"{spec.name} must be finite, got {value!r}")
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    raise ParameterError(f"{spec.name} must be {kind.__name__}, got {value!r}")
