"""The run browser's search field lists the catalogue's runs the filters select (``rrambench runs`` filters)."""

from __future__ import annotations

from pathlib import Path

from PyQt5.QtCore import Qt

from gui.run_browser import RunBrowser
from protocols.cli.main import main


def _run(folder: Path, bias: str, chip: str) -> Path:
    assert main(["run", "read-array", "--out", str(folder), "--seed", "1", "--set", f"bias={bias}",
                 "--sample", f"chip={chip}"]) == 0
    return max(folder.glob("*.h5"), key=lambda p: p.stat().st_mtime)


def test_the_search_field_lists_the_runs_the_filters_select(qtbot, tmp_path, capsys):
    low = _run(tmp_path, "0.05", "A1")
    high = _run(tmp_path, "0.2", "B2")
    browser = RunBrowser(tmp_path)
    qtbot.addWidget(browser)
    assert browser.files.count() == 2
    for text, expected in [("bias>0.1", [high]), ("chip=A1 status=completed", [low]), ("protocol=form", []),
                           ("", [high, low])]:
        browser.search.setText(text)
        qtbot.keyClick(browser.search, Qt.Key_Return)
        listed = sorted(browser.files.item(i).data(Qt.UserRole) for i in range(browser.files.count()))
        assert listed == sorted(str(p) for p in expected), text
    browser.search.setText("bias>0.1")  # a run found by the search opens as a click on it opens it
    qtbot.keyClick(browser.search, Qt.Key_Return)
    (item,) = [browser.files.item(i) for i in range(browser.files.count())]
    with qtbot.waitSignal(browser.opened, timeout=60_000) as shown:
        rect = browser.files.visualItemRect(item)
        qtbot.mouseClick(browser.files.viewport(), Qt.LeftButton, pos=rect.center())
    assert shown.args[0].path == high and "bias" in browser.summary.toPlainText()
    browser.search.setText("bias<abc")
    qtbot.keyClick(browser.search, Qt.Key_Return)
    assert browser.files.count() == 0 and "compares numbers" in browser.summary.toPlainText()
    capsys.readouterr()
