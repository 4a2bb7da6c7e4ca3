"""The `pcam` command's refusals that need no stack: plain words on stderr, the usage exit code, nothing
touched. (Commands against a stack are tested in tests/integration/.)"""

import pytest

from pcam_ops.cli import USAGE, main


@pytest.mark.parametrize(
    ("parameter", "said"),
    [
        ("foo", "--parameter takes NAME=VALUE"),
        ("=1", "--parameter takes NAME=VALUE"),
        ("NoSuchParameter=1", "template.yaml has no parameter NoSuchParameter"),
        ("TrainingInstanceType=ml.p5.48xlarge", "TrainingInstanceType must be one of AllowedTrainingInstanceTypes"),
    ],
)
def test_local_up_refuses_a_parameter_it_cannot_use_in_plain_words(parameter, said, capsys):
    assert main(["local", "up", "--parameter", parameter]) == USAGE
    printed = capsys.readouterr()
    assert said in printed.err and not printed.out
    assert "Traceback" not in printed.err


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path, capsys):
    precious = tmp_path / "results"
    precious.mkdir()
    (precious / "thesis.docx").write_text("years of work")
    assert main(["demo", "--out", str(precious), "--drop", str(tmp_path / "drop")]) == USAGE
    assert (precious / "thesis.docx").read_text() == "years of work"
    assert "pcam demo did not make" in capsys.readouterr().err


def test_every_command_says_its_defaults_and_shows_an_example():
    import argparse

    from pcam_ops.cli import build_parser

    def commands(parser, path=()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from commands(child, (*path, name))
        if path and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            yield " ".join(path), parser

    found = dict(commands(build_parser()))
    assert {"check", "status", "replay", "local up", "demo", "lab add"} <= found.keys()
    for name, parser in found.items():
        assert (parser.epilog or "").startswith("example: pcam "), f"pcam {name} --help shows no example"
        if name == "status":
            assert "(default: samconfig.toml)" in parser.format_help()


def test_operator_commands_take_the_aws_clis_spelling_of_their_flags(tmp_path):
    """`--stack-name`, `--output json` and `--debug`, as `sam` and `aws` users type them."""
    from pcam_ops.cli import build_parser

    args = build_parser().parse_args(["status", "--stack-name", "pcam-prod", "--output", "json", "--debug"])
    assert (args.stack, args.output, args.debug) == ("pcam-prod", "json", True)
    assert build_parser().parse_args(["lab", "list", "--stack", "s", "--json"]).json


def test_pcam_version_is_the_packages_version(capsys):
    import tomllib
    from pathlib import Path

    from pcam_ops.cli import main

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())["project"]
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"pcam {project['version']}"


def test_a_labs_notice_rule_name_fits_eventbridges_64_characters_for_any_stack_and_lab():
    from pcam_ops.lab_notices import notices_name

    assert notices_name("pcam-local", "lab-a") == "pcam-local-lab-lab-a-notices"
    long_stack, long_lab = "pcam-pipeline-staging-" + "x" * 100, "l" * 32
    name = notices_name(long_stack, long_lab)
    assert len(name) <= 64 and name != notices_name(long_stack, "l" * 31), "still one name per lab"
