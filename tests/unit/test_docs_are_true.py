"""The docs say only what is true: parameters and their defaults, `pcam` commands and flags, event fields, links
and anchors, and a newest-first CHANGELOG (tests/docs_contract.py). Each check is also shown to catch a lie."""

from __future__ import annotations

import pytest

from pcam_local.template import load_template
from pcam_ops.cli import build_parser
from tests import docs_contract
from tests.docs_contract import DOCS, ROOT

PARAMETERS = load_template(ROOT / "template.yaml")["Parameters"]
PARSER = build_parser()


def named(path):
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", DOCS + [ROOT / "samconfig.toml"], ids=named)
def test_every_parameter_a_doc_names_exists_with_the_default_it_states(path):
    assert docs_contract.parameter_problems(path.read_text(), PARAMETERS, named(path)) == []


@pytest.mark.parametrize("path", DOCS, ids=named)
def test_every_pcam_command_and_flag_a_doc_names_exists(path):
    assert docs_contract.pcam_problems(path.read_text(), PARSER, named(path)) == []


def test_every_event_field_integrators_name_is_in_its_schema():
    text = (ROOT / "docs" / "integrators.md").read_text()
    assert docs_contract.event_field_problems(text, "integrators.md") == []


@pytest.mark.parametrize("path", DOCS, ids=named)
def test_every_link_and_anchor_resolves(path):
    assert docs_contract.link_problems(path) == []


def test_the_changelog_is_newest_first():
    assert docs_contract.changelog_problems((ROOT / "CHANGELOG.md").read_text()) == []


def test_the_checks_catch_a_wrong_default_a_missing_flag_and_a_field_no_schema_has(tmp_path):
    wrong_default = "| `JpegQuality` | `85` | JPEG quality |\n"
    assert "JpegQuality's default is '90'" in docs_contract.parameter_problems(wrong_default, PARAMETERS, "d")[0]
    assert docs_contract.parameter_problems("sam deploy --parameter-overrides MaxQcFailFractions=0.3", PARAMETERS, "d")
    assert docs_contract.pcam_problems("run `pcam status --labb a`", PARSER, "d") == [
        "d: `pcam status` has no flag --labb"
    ]
    assert docs_contract.pcam_problems("`pcam lab rename a b`", PARSER, "d") == [
        "d: `pcam lab` has no command 'rename'"
    ]
    header = "| event | the same news when these are equal | order |\n"
    table = header + "| `Slide Scored` | `slide_id`, `run_identifier` | `scored_at` |\n"
    assert docs_contract.event_field_problems(table, "d") == [
        "d: `Slide Scored` is keyed or ordered by 'run_identifier', which its schema lacks"
    ]
    page = tmp_path / "page.md"
    page.write_text("# Title\n\nSee [below](#nowhere) and [a file](missing.md).\n")
    assert len(docs_contract.link_problems(page)) == 2
    assert docs_contract.changelog_problems("## 2026-12-03\n\n## 2026-12-04\n")
