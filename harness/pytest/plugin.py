"""pytest plugin: `pytest --endpoint URL` runs one test per conformance check.

The endpoint is captured once per session (a session fixture) and every check becomes its own test item, marked
with its category so `-m timing` selects a category. A failing check prints its evidence and a curl command.
Without a URL (`pytest --endpoint` alone, or `--endpoint embedded`) an embedded reference server is checked. Without
the option at all, the ini setting `streamconform_endpoint` names the endpoint; failing that, asking for the
conformance tests themselves (`pytest --pyargs harness.conformance_tests`) checks the embedded server, and any other
run is left alone (installing streamconform adds no tests to an unrelated project).

Layout follows pytest-benchmark's: options defined once (harness/cli/options.py, shared with the CLI), state under a
StashKey in config.stash, evidence on item.user_properties so junitxml and other reporters can read it.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import pytest

from harness.cli.options import add_run_options, run_options_from

EMBEDDED = "embedded"
CATEGORIES = ("http", "framing", "schema", "stream", "content", "timing", "errors", "robustness", "clients")
_PREFIX = "conformance-"
_CONFORMANCE_MODULE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "conformance_tests.py")  # harness.conformance_tests


class ConformanceWarning(UserWarning):
    """An advisory check failed or a check warned: reported, but the test does not fail."""


@dataclass
class _State:
    endpoint: str
    profile: Any
    url: str | None = None  # resolved: the embedded server's endpoint once started
    result: Any = None
    result_error: str | None = None
    cleanups: list = field(default_factory=list)


_STATE = pytest.StashKey[_State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("streamconform", "streaming LLM endpoint conformance (streamconform)")
    group.addoption("--endpoint", action="store", nargs="?", const=EMBEDDED, default=None, metavar="URL",
                    help="check this streaming endpoint; without a value, an embedded reference server")
    group.addoption("--conformance-profile", dest="conformance_profile", default="tds",
                    help="profile name or TOML path (default: tds)")
    try:  # the short spelling of the CLI, unless another plugin (e.g. pytest-profiling) owns it
        group.addoption("--profile", dest="conformance_profile", default="tds",
                        help="same as --conformance-profile")
    except ValueError:
        pass
    group.addoption("--conformance-json", dest="conformance_json", default=None, metavar="PATH",
                    help="write the conformance result JSON to PATH")
    add_run_options(group.addoption, prefix=_PREFIX)
    try:  # `pytest --endpoint URL --clients all`, as on the CLI, unless another plugin owns the short name
        group.addoption("--clients", dest="conformance_clients", default=None, metavar="all|NAME,...",
                        help="same as --conformance-clients")
    except ValueError:
        pass
    parser.addini("streamconform_endpoint", default=None,
                  help="the endpoint checked when --endpoint is not given: a URL, or 'embedded'")


def _default_endpoint(config: pytest.Config) -> str | None:
    """The endpoint when --endpoint is absent: the ini setting, else the embedded reference server when the
    conformance tests themselves were asked for (``pytest --pyargs harness.conformance_tests``, or its path).

    Otherwise None: an installed plugin adds nothing to an unrelated project's test run.
    """
    configured = config.getini("streamconform_endpoint")
    if configured:
        return str(configured).strip()
    for arg in config.args:
        target = str(arg).split("::")[0]
        if (config.option.pyargs and target == "harness.conformance_tests") or (
                os.path.abspath(target) == os.path.abspath(_CONFORMANCE_MODULE)):
            return EMBEDDED
    return None


@pytest.hookimpl(tryfirst=True)  # before pytest-benchmark's configure creates its storage folder
def pytest_configure(config: pytest.Config) -> None:
    for category in CATEGORIES:
        config.addinivalue_line("markers", f"{category}: streamconform checks of the {category} category")
    config.addinivalue_line("markers", "conformance: a streamconform conformance check")
    endpoint = config.getoption("endpoint")
    from_option = endpoint is not None
    if endpoint is None:
        endpoint = _default_endpoint(config)
    if endpoint is None:
        return
    from harness.run.profile import load_profile

    profile = load_profile(config.getoption("conformance_profile"),
                           config.getoption("conformance_overrides") or [])
    from harness.clients import parse_names, with_clients

    try:  # --conformance-clients names checks to collect: the profile carries them, as run_target's does
        parse_names(config.getoption("conformance_clients"))
    except ValueError as exc:
        raise pytest.UsageError(f"--conformance-clients: {exc}") from None
    profile = with_clients(profile, config.getoption("conformance_clients"))
    config.stash[_STATE] = state = _State(endpoint=endpoint, profile=profile)
    _forget_empty_benchmark_storage(state)
    # `pytest --endpoint URL` alone runs the conformance checks only; with explicit paths, or when the endpoint
    # comes from the ini file (a project's standing setting), they run alongside the project's own tests.
    if from_option and config.args_source != pytest.Config.ArgsSource.ARGS:
        config.args[:] = [_CONFORMANCE_MODULE]
    elif _CONFORMANCE_MODULE not in config.args:
        config.args.append(_CONFORMANCE_MODULE)


def _forget_empty_benchmark_storage(state: _State) -> None:
    """pytest-benchmark creates ./.benchmarks at start-up whether or not anything is saved; a conformance run that
    saved nothing leaves no empty folder behind in the user's directory."""
    import os

    folder = os.path.abspath(".benchmarks")
    if os.path.exists(folder):
        return

    def remove_if_empty() -> None:
        try:
            os.rmdir(folder)  # only succeeds when empty
        except OSError:
            pass

    state.cleanups.append(remove_if_empty)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_check_id" not in metafunc.fixturenames:
        return
    state = metafunc.config.stash.get(_STATE, None)
    if state is None:
        metafunc.parametrize("conformance_check_id", [pytest.param(None, marks=pytest.mark.skip(
            reason="no --endpoint given"))])
        return
    from harness.run.runner import planned_checks

    params = []
    for check_id, category in planned_checks(state.profile):
        marks = [pytest.mark.conformance]
        if category in CATEGORIES:
            marks.append(getattr(pytest.mark, category))
        params.append(pytest.param(check_id, id=check_id, marks=marks))
    metafunc.parametrize("conformance_check_id", params)


def _resolve_url(state: _State) -> str:
    if state.url is None:
        state.url = state.endpoint
        if state.endpoint == EMBEDDED:
            from reference_server.embedded import EmbeddedServer

            server = EmbeddedServer().start()
            state.cleanups.append(server.stop)
            state.url = server.endpoint
    return state.url


def _run_once(config: pytest.Config) -> _State:
    state = config.stash[_STATE]
    if state.result is None and state.result_error is None:
        from harness.run.runner import run_target

        url = _resolve_url(state)
        options = run_options_from(config.option, prefix=_PREFIX)
        try:
            state.result = asyncio.run(asyncio.wait_for(run_target(url, state.profile, options),
                                                        options.limits.deadline_s + 2.0))
        except asyncio.TimeoutError:
            state.result_error = f"the run did not finish within its {options.limits.deadline_s:.0f} s deadline"
    return state


@pytest.fixture(scope="session")
def conformance_result(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The endpoint's run result (as a dict), captured once per session."""
    if _STATE not in request.config.stash:
        pytest.skip("no --endpoint given")
    state = _run_once(request.config)
    if state.result_error:
        pytest.fail(state.result_error, pytrace=False)
    return state.result.to_dict()


@pytest.fixture(scope="session")
def conformance_endpoint(request: pytest.FixtureRequest) -> str:
    """The URL under test (the embedded reference server's, when none was given)."""
    if _STATE not in request.config.stash:
        pytest.skip("no --endpoint given")
    return _resolve_url(request.config.stash[_STATE])


def assert_check(result: dict[str, Any], check_id: str, item: pytest.Item | None = None) -> None:
    """Turn one check result into a test outcome; used by the generated conformance tests."""
    from harness.cli.console import format_check_failure

    check = next((c for c in result["checks"] if c["id"] == check_id), None)
    if check is None:
        pytest.skip(f"{check_id} did not run for this profile")
    if item is not None:
        item.user_properties.extend([
            ("status", check["status"]),
            ("measured", json.dumps(check.get("measured"), default=str)),
            ("threshold", json.dumps(check.get("threshold"), default=str)),
            ("evidence", json.dumps(check.get("evidence"), default=str)[:2000]),
        ])
    status = check["status"]
    if status == "skip":
        pytest.skip(check.get("message") or "skipped")
    if status == "fail" and check.get("required"):
        pytest.fail(format_check_failure(check), pytrace=False)
    if status in ("fail", "warn"):
        warnings.warn(ConformanceWarning(format_check_failure(check)), stacklevel=2)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    path = session.config.getoption("conformance_json")
    if path and state.result is not None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(state.result.to_dict(), fh, indent=2)
    for cleanup in reversed(state.cleanups):
        cleanup()
    state.cleanups.clear()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """The run's verdict line, as the CLI prints it: PASS with its advisory failures named, or FAIL with the cause."""
    state = config.stash.get(_STATE, None)
    if state is None or state.result is None:
        return
    terminalreporter.write_sep("-", "streamconform")
    terminalreporter.write_line(state.result.verdict())


def pytest_report_header(config: pytest.Config) -> str | None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return None
    target = "an embedded reference server" if state.endpoint == EMBEDDED else state.endpoint
    return f"streamconform: checking {target} with profile {state.profile.name}"
