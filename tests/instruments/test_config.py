"""Bench configuration: the shipped default, and one clear error per bad file."""

import pytest

from instruments.config import load_config, parse_config
from instruments.errors import ConfigError
from instruments.limits import Limits


def test_the_shipped_default_is_the_embedded_simulated_bench():
    config = load_config()
    assert config.simulated and config.backend == "sim"
    assert config.limits == Limits()
    assert set(config.timeouts) == {"smu", "scope", "macro_controller"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backend = 'warp'", "backend must be one of"),
        ("bogus = 1", "unknown key"),
        ("[limits]\nset_voltage = -1", "positive finite"),
        ("[limits]\nset_voltag = 1", "unknown key"),
        ("[limits]\nset_voltage = 'high'", "positive finite"),
        ("[sim]\nseed = 'x'", "must be int"),
        ("[timeouts]\nsmu = 0", "positive number of seconds"),
        ("backend = 'hardware'\n[resources]\nsmu = 'TCPIP0::h::5025::SOCKET'", "needs [resources]"),
        ("limits = 3", "must be a table"),
        ("backend = ", "bench config"),
        ("[resources]\nvisa_library = ''", "visa_library"),
        ("[clock]\ntime_scale = 0", "time_scale"),
        ("[clock]\ntime_scale = true", "time_scale"),
        ("[clock]\nrate = 2", "unknown key [clock].rate"),
    ],
)
def test_bad_files_give_one_clear_config_error(tmp_path, text, message):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_a_missing_or_binary_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    binary = tmp_path / "b.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        load_config(binary)


def test_limits_and_sim_values_are_taken_from_the_file():
    config = parse_config({"sim": {"seed": 7, "formed": False}, "limits": {"set_voltage": 1.5}})
    assert config.seed == 7 and not config.formed
    assert config.limits.set_voltage == 1.5
    assert config.as_dict()["limits"]["set_voltage"] == 1.5


def test_the_sampling_board_defaults_to_ours_and_the_seed_board_is_optional():
    """[sampler].board picks the board `sample` runs on; [resources].seed_board is optional."""
    assert load_config().sampler_board == "macro_controller"
    config = parse_config({"sampler": {"board": "seed_board"}, "resources": {"seed_board": "/dev/ttyACM0"}})
    assert config.sampler_board == "seed_board" and config.resources["seed_board"] == "/dev/ttyACM0"
    assert config.as_dict()["sampler"] == {"board": "seed_board"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sampler]\nboard = 'seed'", "[sampler].board must be one of macro_controller, seed_board"),
        ("[sampler]\nbord = 'seed_board'", "unknown key [sampler].bord"),
        ("[resources]\nlegacy = 'x'", "unknown instrument [resources].legacy"),
        ("[resources]\nseed_board = ''", "must be a resource string"),
        ("backend = 'hardware'\n[resources]\nsmu = 'a'\nscope = 'b'\nmacro_controller = 'c'\n"
         "[sampler]\nboard = 'seed_board'",
         "needs [resources].seed_board"),
    ],
)
def test_bad_sampler_choices_give_one_clear_config_error(tmp_path, text, message):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as info:
        load_config(path)
    assert "\n" not in str(info.value)
