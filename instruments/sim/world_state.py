"""Small state records of the simulated world: source outputs and link faults."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

LINKS = ("smu", "scope", "macro_controller")


@dataclass
class OutputState:
    """What the simulated bench is driving right now.

    ``smu_on``: SMU output relay; ``smu_level``: SMU source level (V);
    ``dac_max``: largest |DAC output| of the board (V); ``integrators_running``:
    the analog integrators' run switches; ``routed``: (macro, row, col) the switch
    matrix connects to the SMU, or None. Emulators set the fields they own.
    """

    smu_on: bool = False
    smu_level: float = 0.0
    dac_max: float = 0.0
    integrators_running: bool = False
    routed: tuple[int, int, int] | None = None

    def is_safe(self) -> bool:
        """True when no source drives anything: SMU off at 0 V, DACs at 0 V, integrators held."""
        return (not self.smu_on and self.smu_level == 0.0 and self.dac_max == 0.0
                and not self.integrators_running)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["routed"] = list(self.routed) if self.routed is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> OutputState:
        routed = d.get("routed")
        return cls(smu_on=bool(d["smu_on"]), smu_level=float(d["smu_level"]),
                   dac_max=float(d["dac_max"]), integrators_running=bool(d["integrators_running"]),
                   routed=tuple(int(x) for x in routed) if routed is not None else None)


@dataclass
class FaultConfig:
    """Faults the loopback server of one link injects (all off by default).

    ``corrupt_rate``: probability per byte of a flipped byte (serial link), 0..1;
    ``drop_rate``: probability per byte of a dropped byte, 0..1;
    ``reply_delay``: s of real delay before each reply, >= 0;
    ``missing_reply_rate``: probability per message that no reply is sent, 0..1;
    ``disconnect_after``: close the connection after this many messages (0 = never).
    The servers read these fields live, so a test can change them mid-run.
    """

    corrupt_rate: float = 0.0
    drop_rate: float = 0.0
    reply_delay: float = 0.0
    missing_reply_rate: float = 0.0
    disconnect_after: int = 0

    def __post_init__(self) -> None:
        for name in ("corrupt_rate", "drop_rate", "missing_reply_rate"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
                raise ValueError(f"FaultConfig.{name} must be a probability in [0, 1], got {v!r}")
        if not isinstance(self.reply_delay, (int, float)) or not math.isfinite(self.reply_delay) \
                or self.reply_delay < 0:
            raise ValueError(f"FaultConfig.reply_delay must be finite and >= 0 s, got {self.reply_delay!r}")
        if isinstance(self.disconnect_after, bool) or not isinstance(self.disconnect_after, int) \
                or self.disconnect_after < 0:
            raise ValueError(
                f"FaultConfig.disconnect_after must be an integer >= 0, got {self.disconnect_after!r}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def default_faults() -> dict[str, FaultConfig]:
    """One fault-free :class:`FaultConfig` per link name."""
    return {name: FaultConfig() for name in LINKS}
