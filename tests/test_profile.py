"""Profiles: built-ins load and validate, overrides are typed, unknown keys are errors, rules resolve by glob."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.run.profile import builtin_profiles, load_profile


def test_builtins_load():
    assert set(builtin_profiles()) >= {"tds", "openai", "minimal", "grading"}
    for name in builtin_profiles():
        p = load_profile(name)
        assert p.name == name and len(p.prompts) >= 2 and p.prompts[0] != p.prompts[1]


def test_tds_is_the_seed_table():
    p = load_profile("tds")
    assert (p.get("content.min_chunks"), p.get("content.min_chars"), p.get("timing.ttft_ms"),
            p.get("timing.tokens_per_s")) == (5, 1375, 2401, 29)
    assert p.dialect == "prompt" and set(p.formats) == {"sse", "ndjson"} and p.schema == "chunk.seed"
    # Every row of the seed's table is required, relevance and bad requests included; CORS is not in the table.
    for cid in ("timing.ttft", "content.relevance", "content.not_echo", "content.distinct", "content.not_padding",
                "content.placeholder_first", "timing.progressive", "errors.invalid_json", "errors.midstream",
                "stream.done"):
        assert p.rule(cid).required, cid
    assert not p.rule("errors.cors").required and not p.rule("stream.finish_reason").required


def test_grading_extends_tds_and_requires_anti_gaming():
    g = load_profile("grading")
    assert g.get("timing.ttft_ms") == 2401
    for cid in ("content.relevance", "content.not_echo", "content.distinct", "content.not_padding",
                "content.placeholder_first", "timing.progressive"):
        assert g.rule(cid).required and g.rule(cid).weight > 0
    assert g.rule("errors.cors").weight == 0.5 and not g.rule("errors.cors").required
    assert g.rule("errors.invalid_json").weight == 0.25 and g.rule("errors.invalid_json").required  # tds's glob
    assert g.rule("robustness.repeats").weight == 0.5


def test_openai_is_strict():
    p = load_profile("openai")
    assert p.dialect == "openai" and p.schema == "chunk.openai" and p.formats == ["sse"]
    for cid in ("schema.consistent_id", "stream.done", "stream.finish_reason", "stream.usage"):
        assert p.rule(cid).required


def test_typed_overrides():
    p = load_profile("tds", ["timing.ttft_ms=1500", "timing.burst_share=0.8", "dialect=openai",
                             "checks.timing.ttft.required=false", "checks.content.distinct.weight=3",
                             "errors.rate_limit=true", "errors.accepted_codes=400,422",
                             "formats=sse"])
    assert p.get("timing.ttft_ms") == 1500 and isinstance(p.get("timing.ttft_ms"), int)
    assert p.get("timing.burst_share") == 0.8
    assert p.dialect == "openai"
    assert not p.rule("timing.ttft").required
    assert p.rule("content.distinct").weight == 3.0
    assert p.section("errors")["rate_limit"] is True
    assert p.formats == ["sse"]


@pytest.mark.parametrize("item", [
    "timing.nope=1", "nosuch.key=1", "timing.ttft_ms=fast", "errors.rate_limit=maybe", "timing.ttft_ms",
    "checks.nosuch.check.required=true", "checks.timing.ttft.colour=red", "timing=1", "dialect=klingon",
])
def test_bad_overrides_are_config_errors(item):
    with pytest.raises(ConfigError):
        load_profile("tds", [item])


def test_unknown_profile_and_path(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile("nope")
    custom = tmp_path / "mine.toml"
    custom.write_text('extends = "tds"\nname = "mine"\n[timing]\nttft_ms = 999\n')
    p = load_profile(str(custom))
    assert p.name == "mine" and p.get("timing.ttft_ms") == 999 and p.get("content.min_chars") == 1375
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [")
    with pytest.raises(ConfigError, match="TOML"):
        load_profile(str(bad))
    few = tmp_path / "few.toml"
    few.write_text('name = "few"\nprompts = ["only one"]\n')
    with pytest.raises(ConfigError, match="prompts"):
        load_profile(str(few))


def test_sections_are_copies():
    p = load_profile("tds")
    p.section("robustness")["concurrency"] = 99
    assert p.section("robustness")["concurrency"] == 5
    assert p.section("nothing") == {}


def test_a_bare_custom_profile_runs_every_check_as_advisory(tmp_path):
    bare = tmp_path / "bare.toml"
    bare.write_text('name = "bare"\nprompts = ["volcanoes and eruptions", "bread dough and yeast"]\n'
                    '[checks."timing.ttft"]\nrequired = true\n[checks."timing.itl"]\nenabled = false\n')
    p = load_profile(str(bare))
    assert p.rule("timing.ttft").required and p.rule("timing.ttft").weight == 1.0
    assert not p.enabled("timing.itl")
    assert p.enabled("http.status") and not p.rule("http.status").required
