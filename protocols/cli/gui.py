"""``rrambench gui``: the operator window (needs the ``gui`` extra: PyQt5 and pyqtgraph).

``--screenshot PNG`` starts with the embedded simulated bench connected, renders the
main window offscreen, saves it and exits (docs, tests).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

SCREENSHOT_TIMEOUT = 60.0  # s, longest wait for the bench to connect and the maps to fill


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("gui", help="the bench operator window (PyQt5)",
                            description="Open the operator window. Needs the gui extra: pip install rrambench[gui].")
    parser.add_argument("--config", type=Path, metavar="F", help="bench config TOML (default: simulated bench)")
    parser.add_argument("--data", type=Path, default=Path("runs"), metavar="DIR",
                        help="folder of run files (default: ./runs)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="connect the embedded simulated bench, save the window as PNG and exit")
    parser.set_defaults(func=run_gui)


def missing_gui_packages() -> list[str]:
    """The gui extra's packages that cannot be imported (absent, or a broken install)."""
    missing = []
    for name in ("PyQt5", "pyqtgraph"):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def run_gui(args: argparse.Namespace) -> int:
    missing = missing_gui_packages()
    if missing:
        print(f"rrambench: error: the GUI needs {' and '.join(missing)}: pip install 'rrambench[gui]'",
              file=sys.stderr)
        return 2
    if args.screenshot is not None and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if args.config is not None:
        from instruments.config import load_config

        load_config(args.config)  # a bad file is one line and exit 2, before any window opens

    root = logging.getLogger()
    for handler in root.handlers:  # the terminal keeps the CLI's level (-v); the log pane shows INFO
        handler.setLevel(max(handler.level, root.level))

    from gui.session import run_window, save_screenshot

    if args.screenshot is not None:
        path = save_screenshot(args.screenshot, config=args.config, data_dir=args.data, timeout=SCREENSHOT_TIMEOUT)
        print(path)
        return 0
    return run_window(config=args.config, data_dir=args.data)
