"""The wheel must carry every code package and the shipped data."""

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = set()
    for top in ("instruments", "protocols", "analysis", "gui"):
        for init in (ROOT / top).rglob("__init__.py"):
            found.add(".".join(init.parent.relative_to(ROOT).parts))
    for init in (ROOT / "data").rglob("__init__.py"):
        found.add(".".join(("rrambench_data", *init.parent.relative_to(ROOT / "data").parts)))
    assert found <= listed, f"add to [tool.setuptools].packages: {sorted(found - listed)}"


def test_default_bench_config_is_found_through_the_installed_data_package():
    from instruments.paths import default_bench_config

    assert default_bench_config().is_file()
