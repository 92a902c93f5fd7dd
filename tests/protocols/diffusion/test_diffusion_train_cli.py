"""``rrambench train`` without torch: one clear line and exit code 2."""

import importlib.util

from protocols.cli.main import main


def test_train_without_torch_exits_2_with_a_clear_message(monkeypatch, capsys, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    assert main(["train", "ring", "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert "PyTorch" in err and "rrambench[train]" in err
    assert not (tmp_path / "m.npz").exists()


def test_train_refuses_bad_arguments_with_exit_code_2(tmp_path, capsys):
    assert main(["train", "ring", "--epochs", "0", "--out", str(tmp_path / "m.npz")]) == 2
    assert main(["train", "ring", "--out", str(tmp_path / "nodir" / "m.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
