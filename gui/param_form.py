"""A parameter form generated from a protocol's ``Params`` dataclass.

One row per parameter: a field (text, check box or choice box), its unit, and a
tooltip with the help text, limits and default. Values are parsed and checked by
the same code as ``rrambench run --set`` (``protocols.engine.params``), then against the
bench's safety envelope; a refusal is shown in red under the form and the field
it names is outlined, nothing is clipped.
"""

from __future__ import annotations

from typing import Any

from PyQt5.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QWidget

from instruments.errors import LimitError
from instruments.limits import Limits
from protocols.engine.bench_shape import BenchShape
from protocols.engine.params import ParameterError, ParamSpec, format_value, parse_text
from protocols.engine.protocol import Protocol

ERROR_STYLE = "border: 2px solid #d00;"


def tooltip(spec: ParamSpec) -> str:
    """Help, unit, limits, choices and default of one parameter, as shown on hover."""
    lines = [spec.help or spec.name]
    unit = f" {spec.unit}" if spec.unit else ""
    if spec.limits is not None:
        lines.append(f"limits: {spec.limits[0]:g} .. {spec.limits[1]:g}{unit}")
    if spec.choices is not None:
        lines.append("choices: " + ", ".join(map(str, spec.choices)))
    if spec.is_list:
        lines.append("a list: values separated by commas")
    if spec.envelope:
        lines.append(f"also checked against the bench's safety limits ({spec.envelope})")
    lines.append(f"default: {format_value(spec.default)}{unit}")
    return "\n".join(lines)


class ParamForm(QWidget):
    """Form for one protocol class; :meth:`protocol` returns a validated instance or None."""

    def __init__(self, protocol_cls: type[Protocol], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.protocol_cls = protocol_cls
        self.specs = {s.name: s for s in protocol_cls.param_specs()}
        self.fields: dict[str, QWidget] = {}
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #c00; font-weight: bold;")
        self.message.hide()
        layout = QFormLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        for spec in self.specs.values():
            field = self._field(spec)
            field.setToolTip(tooltip(spec))
            self.fields[spec.name] = field
            row = QHBoxLayout()
            row.addWidget(field, 1)
            unit = QLabel(spec.unit)
            unit.setMinimumWidth(20)
            row.addWidget(unit)
            label = QLabel(spec.name)
            label.setToolTip(tooltip(spec))
            layout.addRow(label, row)
        layout.addRow(self.message)

    # -- values --------------------------------------------------------------------------
    def raw_values(self) -> dict[str, Any]:
        """Typed values of every field (ParameterError names a field that does not parse)."""
        values = {}
        for name, field in self.fields.items():
            spec = self.specs[name]
            if isinstance(field, QCheckBox):
                values[name] = field.isChecked()
            elif isinstance(field, QComboBox):
                values[name] = spec.choices[field.currentIndex()]
            else:
                values[name] = parse_text(spec, field.text().strip())
        return values

    def set_value(self, name: str, value: Any) -> None:
        """Put ``value`` in the field ``name`` (KeyError if the protocol has no such parameter)."""
        field = self.fields[name]
        if isinstance(field, QCheckBox):
            field.setChecked(bool(value))
        elif isinstance(field, QComboBox):
            field.setCurrentIndex(list(self.specs[name].choices).index(value))
        else:
            field.setText(format_value(value))

    def protocol(self, limits: Limits | None = None, shape: BenchShape | None = None) -> Protocol | None:
        """A protocol instance from the form, or None with the refusal shown under the form.

        ``limits``: the safety envelope; ``shape``: the bench the run's inputs are checked
        against (``Protocol.validate``, as ``rrambench run --dry-run`` does)."""
        self.clear_message()
        try:
            proto = self.protocol_cls.from_values(self.raw_values())
            if limits is not None:
                proto.check_limits(limits)
            if shape is not None:
                proto.validate(shape)
        except (ParameterError, LimitError, ValueError) as exc:
            self.show_error(str(exc))
            return None
        return proto

    # -- messages ------------------------------------------------------------------------
    def show_error(self, text: str) -> None:
        """Show a refusal and outline the field(s) it names."""
        self.message.setText(text)
        self.message.show()
        for name, field in self.fields.items():
            if text.startswith(name) or f" {name}" in text or f"{name}=" in text:
                field.setStyleSheet(ERROR_STYLE)

    def clear_message(self) -> None:
        self.message.setText("")
        self.message.hide()
        for field in self.fields.values():
            field.setStyleSheet("")

    def _field(self, spec: ParamSpec) -> QWidget:
        if spec.kind is bool and not spec.is_list:
            box = QCheckBox()
            box.setChecked(bool(spec.default))
            return box
        if spec.choices is not None and not spec.is_list:
            combo = QComboBox()
            combo.addItems([str(c) for c in spec.choices])
            combo.setCurrentIndex(list(spec.choices).index(spec.default))
            return combo
        edit = QLineEdit(format_value(spec.default))
        edit.textEdited.connect(lambda _text: self.clear_message())
        return edit
