"""SCPI parser rules shared by the emulators: forms, paths, parameters, error queue."""

import pytest

from instruments.sim.scpi import ERROR_QUEUE_LENGTH, ScpiInstrument, expect, short_form


class Box(ScpiInstrument):
    """A minimal instrument: one numeric setting, a channel table, a string, a boolean."""

    idn = "ACME,BOX,1,0.1"

    def __init__(self):
        self.reset()
        super().__init__()

    def reset(self):
        self.level = 0.0
        self.scale = {1: 1.0, 2: 1.0}
        self.name = ""
        self.on = False

    def commands(self):
        return {
            ":SOURce:VOLTage[:LEVel][:IMMediate]": self._set_level,
            ":SOURce:VOLTage[:LEVel][:IMMediate]?": lambda a, s: f"{self.level:g}",
            ":SOURce:VOLTage:ILIMit": lambda a, s: None,
            ":CHANnel<n>:SCALe": self._set_scale,
            ":CHANnel<n>:SCALe?": lambda a, s: f"{self.scale[s[0]]:g}",
            ":DISPlay:TEXT": self._set_text,
            ":DISPlay:TEXT?": lambda a, s: f'"{self.name}"',
            ":OUTPut[:STATe]": self._set_on,
            ":OUTPut[:STATe]?": lambda a, s: "1" if self.on else "0",
        }

    def _set_level(self, args, suffixes):
        self.level = expect(args, 1)[0].number("level", -10, 10)

    def _set_scale(self, args, suffixes):
        if suffixes[0] not in self.scale:
            from instruments.sim.scpi import ScpiError

            raise ScpiError(-114, f"channel {suffixes[0]}")
        self.scale[suffixes[0]] = expect(args, 1)[0].number("scale", 1e-3, 5)

    def _set_text(self, args, suffixes):
        self.name = expect(args, 1)[0].string()

    def _set_on(self, args, suffixes):
        self.on = expect(args, 1)[0].boolean("output")


def ask(box, line):
    reply = box.handle(line.encode())
    return None if reply is None else reply.decode()


def errors(box):
    out = []
    while True:
        entry = ask(box, ":SYST:ERR?")
        if entry.startswith("0,"):
            return out
        out.append(int(entry.split(",")[0]))


def test_short_form_is_the_upper_case_part_of_the_long_name():
    assert short_form("CHANnel") == "CHAN"
    assert short_form("SOURce") == "SOUR"
    assert short_form("*IDN") == "*IDN"


@pytest.mark.parametrize("line", [
    ":SOURce:VOLTage:LEVel:IMMediate 1.5", ":SOUR:VOLT 1.5", "sour:volt:lev 1.5", "SoUrCe:VoLt:LeV 1.5",
    ":SOUR:VOLT:IMM 1.5", ":sour:voltage 1.5",
])
def test_long_short_case_optional_nodes_and_leading_colon_are_equivalent(line):
    box = Box()
    assert ask(box, line) is None
    assert box.level == 1.5 and errors(box) == []


@pytest.mark.parametrize("text", ["1", "1.0", "1e-3", "0.000105", "+.5", "-2.", "1E+0", "MAX", "min"])
def test_numbers_in_any_decimal_or_exponent_form(text):
    box = Box()
    ask(box, f":SOUR:VOLT {text}")
    assert errors(box) == []
    expected = {"MAX": 10.0, "min": -10.0}[text] if text in ("MAX", "min") else float(text)
    assert box.level == pytest.approx(expected)


def test_partial_or_over_long_mnemonics_are_undefined_headers():
    box = Box()
    ask(box, ":SOURC:VOLT 1")  # neither SOUR nor SOURCE
    ask(box, ":SOURCES:VOLT 1")
    assert errors(box) == [-113, -113]


def test_chain_continues_from_the_previous_path_and_a_leading_colon_reroots():
    box = Box()
    assert ask(box, ":SOUR:VOLT:LEV 2;IMM 3;:OUTP ON;:SOUR:VOLT?") == "3"
    assert box.on and errors(box) == []
    ask(box, ":OUTP OFF;VOLT 1")  # relative to the root after OUTP: undefined
    assert errors(box) == [-113]


def test_common_commands_do_not_change_the_path():
    box = Box()
    assert ask(box, ":SOUR:VOLT:LEV 2;*OPC?;IMM 4;*IDN?") == "1;ACME,BOX,1,0.1"
    assert box.level == 4


def test_trailing_semicolon_and_empty_lines_are_legal():
    box = Box()
    assert ask(box, ":SOUR:VOLT 1;") is None
    assert ask(box, "") is None
    assert ask(box, "*RST;:stat:pres;:*CLS;") is None
    assert errors(box) == []


def test_several_queries_in_one_line_answer_joined_by_semicolons():
    box = Box()
    assert ask(box, "*IDN?;:OUTP?;:CHAN2:SCAL?") == "ACME,BOX,1,0.1;0;1"


@pytest.mark.parametrize("line, expected", [
    (":DISP:TEXT 'a;b'", "a;b"), (':DISP:TEXT "a,b"', "a,b"), (":DISP:TEXT 'it''s'", "it's"),
    (':DISP:TEXT "say ""hi"""', 'say "hi"'),
    # arbitrary blocks are opaque to separators and quotes (a #0 block runs to the end of the message)
    (":DISP:TEXT #15hello;:OUTP ON", "hello"), (":DISP:TEXT #210a;b,'c\"d;e;:OUTP ON", "a;b,'c\"d;e"),
    (":DISP:TEXT #0x;y,z", "x;y,z"), (":DISP:TEXT #10;:OUTP ON", ""),
])
def test_strings_and_blocks_reach_the_handler_whole(line, expected):
    box = Box()
    assert ask(box, line) is None
    assert box.name == expected and errors(box) == []


@pytest.mark.parametrize("word, state", [("ON", True), ("on", True), ("1", True), ("OFF", False), ("0", False)])
def test_booleans(word, state):
    box = Box()
    box.on = not state
    ask(box, f":OUTP {word}")
    assert box.on is state


def test_numeric_suffix_defaults_to_one_and_selects_the_channel():
    box = Box()
    ask(box, ":CHAN2:SCAL 0.5;:CHANNEL:SCALE 0.2")
    assert box.scale == {1: 0.2, 2: 0.5}
    ask(box, ":CHAN7:SCAL 1")
    assert errors(box) == [-114]


@pytest.mark.parametrize("line, code", [
    ("FOO:BAR 1", -113), (":SOUR:VOLT 11", -222), (":SOUR:VOLT abc", -104), (":OUTP MAYBE", -224),
    (":SOUR:VOLT", -109), (":SOUR:VOLT 1,2", -108), ("*IDN? 3", -108), (":DISP:TEXT 'open", -102),
    (":SOUR::VOLT 1", -102), (":SOUR:VOLT 1;;:OUTP ON", -102), (":SOUR:VOLT 1e999", -222),
    ("\x01\x02", -102), (":SOUR:VOLT? 1 2", -102), (":SOUR:VOLT:ILIM?", -113),
])
def test_malformed_commands_queue_the_right_scpi_error(line, code):
    box = Box()
    ask(box, line)
    assert errors(box) == [code]
    assert box.internal_errors == 0


def test_error_queue_reports_oldest_first_with_text_then_no_error():
    box = Box()
    ask(box, "FOO")
    ask(box, ":SOUR:VOLT 99")
    assert ask(box, ":SYST:ERR:COUN?") == "2"
    assert ask(box, ":SYSTem:ERRor:NEXT?") == '-113,"Undefined header; FOO"'
    assert ask(box, "syst:err?").startswith('-222,"Data out of range')
    assert ask(box, "SYST:ERR?") == '0,"No error"'


def test_error_queue_overflow_keeps_the_first_errors_and_ends_with_350():
    box = Box()
    for _ in range(ERROR_QUEUE_LENGTH + 5):
        ask(box, "FOO")
    queued = errors(box)
    assert len(queued) == ERROR_QUEUE_LENGTH
    assert queued[-1] == -350 and set(queued[:-1]) == {-113}


def test_cls_clears_the_queue_and_rst_restores_defaults():
    box = Box()
    ask(box, ":SOUR:VOLT 3;FOO")
    ask(box, "*RST")
    assert box.level == 0.0
    ask(box, "*CLS")
    assert errors(box) == []


def test_esr_reports_command_and_execution_errors_once():
    box = Box()
    ask(box, "FOO;:SOUR:VOLT 50")
    assert ask(box, "*ESR?") == str(32 | 16)
    assert ask(box, "*ESR?") == "0"


def test_received_keeps_every_message_and_count_counts_them():
    box = Box()
    for line in ("*IDN?", ":SOUR:VOLT 1", "garbage"):
        ask(box, line)
    assert list(box.received) == [b"*IDN?", b":SOUR:VOLT 1", b"garbage"]
    assert box.count == 3


def test_a_crlf_terminated_line_is_accepted():
    box = Box()
    assert ask(box, "*IDN?\r") == "ACME,BOX,1,0.1"




def test_a_block_may_carry_bytes_a_text_message_could_not():
    box = Box()
    payload = bytes([0, 10, 200, 59])
    assert box.handle(b":DISP:TEXT #14" + payload + b";:OUTP ON") is None
    assert box.name.encode("latin-1") == payload and box.on and errors(box) == []


@pytest.mark.parametrize("line", [":DISP:TEXT #19abc", ":DISP:TEXT #1", ":DISP:TEXT #2x1ab", ":DISP:TEXT #13abcd",
                                  ":SOUR:VOLT #11a"])
def test_a_malformed_or_misused_block_is_an_error(line):
    box = Box()
    ask(box, line)
    assert errors(box) in ([-102], [-104])


def test_status_byte_esb_only_for_enabled_events_and_mss_from_sre():
    box = Box()
    ask(box, "FOO")
    assert ask(box, "*STB?") == "4"  # error available; ESR bit 5 set but not enabled
    ask(box, "*ESE 32")
    assert ask(box, "*STB?") == str(4 | 32)
    ask(box, "*SRE 32")
    assert ask(box, "*STB?") == str(4 | 32 | 64) and ask(box, "*SRE?;*ESE?") == "32;32"
    assert ask(box, "*IDN?;*STB?") == "ACME,BOX,1,0.1;" + str(4 | 16 | 32 | 64)  # MAV: a reply is pending
    ask(box, "*CLS")
    assert ask(box, "*STB?") == "0" and ask(box, "*ESE?") == "32"


def test_suffix_one_nodes_accept_1_only():
    class Numbered(Box):
        def commands(self):
            return {":OUTPut[1]:VOLTage[:STATe]": lambda a, s: setattr(self, "on", expect(a, 1)[0].boolean("on"))}

    box = Numbered()
    ask(box, ":OUTP1:VOLT ON;:OUTP:VOLT:STAT OFF;:OUTP2:VOLT ON")
    assert box.on is False and errors(box) == [-113]
