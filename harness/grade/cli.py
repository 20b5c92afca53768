"""`streamconform grade ROSTER --out DIR`: grade every submission of a roster, resumably.

Exit codes: 0 the batch is complete (every submission has a result, whatever its grade), 1 the grader itself
failed on some submission, or could not save its record (status ``error``; a rerun grades those again), 2 a usage
error (bad roster, unknown profile, bad thresholds) or another grader holds the folder (lock.py), 130 interrupted
(rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from harness.cli.options import (
    add_concurrency,
    add_deadline,
    add_deprecated,
    add_dialect,
    add_header,
    add_json,
    add_max_tokens,
    add_model,
    add_processes,
    add_profile,
    add_quiet,
    add_ray,
    add_set,
    add_token_method,
    check_processes,
)
from harness.errors import ConfigError
from harness.grade.attempt import AttemptPolicy, GradeInput
from harness.grade.resume import plan_resume
from harness.grade.roster import Submission, load_roster
from harness.grade.thresholds import DEFAULT_RANGES, parse_overrides, parse_range, seeded_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("roster", help="CSV with id,url columns (others are carried to the outputs) or JSON lines")
    add("--out", required=True, metavar="DIR",
        help="output folder; rerunning with the same folder resumes (finished ids are skipped, unless their URL, "
             "thresholds, request options or address policy changed)")
    add_profile(add, detail="grading adds credit for CORS and robustness")
    add_concurrency(add, "here: N submissions graded at once (with --ray: on each node); default 64",
                    type=int, default=64, metavar="N")
    add_ray(add, "here: a submission per Ray task, --concurrency at once on each node; the records are "
                 "written here")
    add_processes(add, "here: submissions spread over N processes, --concurrency in flight over all of them, "
                       "the records written by this one (a roster with the probes and robustness keeps one loop "
                       "busy); default: one loop in this process")
    add("--allow-private", action="store_true",
        help="allow loopback/private addresses (local testing only; refused by default)")
    # One value per use: a list of values (nargs) would swallow ROSTER given after it.
    add("--regrade", action="append", default=[], metavar="ID[,ID...]",
        help="grade this id again even if it already has a result; repeatable, or a comma list "
             "(--regrade alice --regrade bob, or --regrade alice,bob)")
    add("--retry-delay", type=float, default=5.0, metavar="S",
        help="wait before the one retry after a transport failure (default 5)")
    add_deadline(add, detail="here: each attempt at each submission")
    add_header(add, detail="sent to every submission, so a credential given here reaches every student's server; "
                           "only Authorization, x-api-key, api-key and Cookie values are hidden in feedback")
    add_set(add, detail="applied to every submission's profile, before its per-student thresholds")
    add_dialect(add, detail="auto is decided per submission")
    add_model(add)
    add_max_tokens(add)
    add_token_method(add)
    add_json(add, "the grading summary (also written to OUT/summary.json)")
    add_quiet(add, "no closing summary either; warnings and errors still print")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--thresholds-column", metavar="NAME",
                       help="roster column with per-student overrides, e.g. "
                            "content.min_chars=1625;timing.ttft_ms=2000")
    group.add_argument("--thresholds-seed", metavar="SEED",
                       help="draw per-student thresholds from a generator seeded with SEED#id (reproducible)")
    add("--thresholds-range", action="append", default=[], metavar="KEY=LOW..HIGH[/STEP]",
        help="with --thresholds-seed: a setting and its range, repeatable (default: "
             + ", ".join(f"{k}={lo:g}..{hi:g}/{st:g}" for k, (lo, hi, st) in DEFAULT_RANGES.items()) + ")")
    add("--send-api-key", action="store_true",
        help="send $STREAMCONFORM_API_KEY to every submission (never done unless asked)")
    add("--submission-reports", action="store_true",
        help="also render each submission's HTML run report beside its record (summary.html always renders, "
             "linking them)")
    # Its old name: --html takes a PATH in every other subcommand.
    add_deprecated(add, "--html", "--submission-reports", "submission_reports", flag=True)


def build_inputs(subs: list[Submission], args: argparse.Namespace) -> list[GradeInput]:
    if args.thresholds_range and not args.thresholds_seed:
        raise ConfigError("--thresholds-range needs --thresholds-seed")
    ranges = dict(parse_range(r) for r in args.thresholds_range) or DEFAULT_RANGES
    items = []
    for sub in subs:
        overrides: list[str] = []
        if args.thresholds_column:
            if args.thresholds_column not in sub.extra:
                raise ConfigError(f"roster has no column {args.thresholds_column!r} (--thresholds-column); "
                                  f"columns: id, url, {', '.join(sub.extra)}")
            overrides = parse_overrides(str(sub.extra[args.thresholds_column] or ""),
                                        where=f"roster line {sub.line} (id {sub.id!r}): ")
        elif args.thresholds_seed is not None:
            overrides = seeded_overrides(args.thresholds_seed, sub.id, ranges)
        items.append(GradeInput(sub, overrides))
    return items


def check_thresholds(items: list[GradeInput], runner: Any, args: argparse.Namespace) -> None:
    """Every student's thresholds must fit the profile before anything is graded; an error names where they came
    from (the roster column and the student, or the seed), not the --set option they are passed as."""
    for overrides in {tuple(i.overrides) for i in items}:
        try:
            runner.profile(list(overrides))
        except ConfigError as exc:
            who = next(i.submission for i in items if tuple(i.overrides) == overrides)
            source = (f"roster column {args.thresholds_column!r}" if args.thresholds_column
                      else f"--thresholds-seed {args.thresholds_seed!r} (--thresholds-range)")
            raise ConfigError(f"{source}, id {who.id!r} (roster line {who.line}): {str(exc).removeprefix('--set ')} "
                              f"(thresholds {';'.join(overrides)}; profile {args.profile!r})") from exc


# Statuses a rerun may change without any roster edit (the endpoint may be up later): suggest --regrade for them.
# invalid_url and blocked_address need a corrected URL, which a rerun grades again by itself (resume.py).
TRANSIENT = ("unreachable", "timeout")
MAX_IDS_SHOWN = 10


def regrade_ids(values: list[str], known: set[str]) -> list[str]:
    """The ids the --regrade options name: a value that is a roster id as given is taken whole (an id may hold
    a comma), any other is a comma list."""
    ids: list[str] = []
    for value in values:
        parts = [value] if value in known else [part.strip() for part in value.split(",") if part.strip()]
        if not parts:
            raise ConfigError(f"--regrade {value!r}: no id given")
        ids += parts
    return ids


def regrade_option(ids: list[str]) -> str:
    """The --regrade option(s) that name ``ids``, ready to paste: one comma list, or one option per id when an
    id holds a comma itself."""
    if any("," in i for i in ids):
        return " ".join(f"--regrade {shlex.quote(i)}" for i in ids)
    return f"--regrade {shlex.quote(','.join(ids))}"


def rerun_hints(summary: dict[str, Any], allow_private: bool = False) -> list[str]:
    subs = summary.get("submissions") or []
    hints = []
    transient = [s["id"] for s in subs if s["status"] in TRANSIENT]
    if transient:
        shown = regrade_option(transient[:MAX_IDS_SHOWN]) + (" ..." if len(transient) > MAX_IDS_SHOWN else "")
        hints.append(f"{len(transient)} did not answer (unreachable or timeout); to try them again later: "
                     f"{shown}")
    fixable = Counter(s["status"] for s in subs if s["status"] in ("invalid_url", "blocked_address"))
    if fixable:
        private_hint = "" if allow_private or "blocked_address" not in fixable else (
            " (--allow-private admits loopback/private addresses, for local testing only)")
        hints.append(f"{' and '.join(f'{n} {k}' for k, n in sorted(fixable.items()))}: a corrected URL in the roster "
                     f"is graded again on rerun{private_hint}")
    return hints


def main(args: argparse.Namespace) -> int:
    from harness.cli.options import parse_headers, prepare_output, profile_overrides
    from harness.grade.engine import EngineRunner
    from harness.grade.lock import hold

    if args.concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    if args.deadline <= 0 or args.retry_delay < 0:
        raise ConfigError("--deadline must be positive and --retry-delay not negative")
    from harness.distributed.ray_backend import check_ray_option

    check_processes(args.processes, args.ray)
    args.ray = check_ray_option(args.ray)  # Ray missing: exit 2 with the install hint, before any work
    subs = load_roster(args.roster)
    items = build_inputs(subs, args)
    known = {s.id for s in subs}
    regrade = regrade_ids(args.regrade, known)
    unknown = [i for i in regrade if i not in known]
    if unknown:
        raise ConfigError(f"--regrade: id(s) not in the roster: {', '.join(map(repr, unknown))}")

    api_key = os.environ.get("STREAMCONFORM_API_KEY") if args.send_api_key else None
    if args.send_api_key and not api_key:
        raise ConfigError("--send-api-key: STREAMCONFORM_API_KEY is not set")
    prepare_output("--json", args.json_path)  # a typo in the path must not cost a whole batch
    runner = EngineRunner(args.profile, allow_private=args.allow_private, deadline_s=args.deadline, api_key=api_key,
                          max_tokens=args.max_tokens, headers=parse_headers(args.headers),
                          overrides=profile_overrides(args), dialect=args.dialect, model=args.model)
    check_thresholds(items, runner, args)

    out = Path(args.out)
    # Before anything in the folder is touched: a second grader on it would grade every id again and sweep the
    # first one's files in flight. Exit 2 (FolderLocked) names the grader that holds it.
    with hold(out, warn=lambda text: print(f"streamconform: warning: {text}", file=sys.stderr)):
        return grade_batch(args, subs, items, regrade, runner, out)


def grade_batch(args: argparse.Namespace, subs: list[Submission], items: list[GradeInput], regrade: list[str],
                runner: Any, out: Path) -> int:
    """Grade what the folder still lacks and write the exports; the caller holds the folder's lock."""
    from harness.grade.batch import grade_all
    from harness.grade.exports import write_batch_exports, write_submission_exports
    from harness.grade.progress import BatchProgress
    from harness.grade.store import ResultStore
    from reports.grading_report import profile_label

    store = ResultStore(out)
    store.prepare()
    plan = plan_resume(items, store, regrade=set(regrade), allow_private=args.allow_private,
                       profile_name=runner.profile_name(), request_options=runner.request_options())
    pending = plan.pending
    if plan.other_profile:  # kept as they are (a rerun that forgot --profile must not regrade a batch): say so
        print(f"streamconform: warning: {len(plan.other_profile)} finished result(s) in {out} were graded with "
              f"another profile (e.g. {plan.other_profile[0]!r}); they are kept. Use a new --out, or --regrade "
              "them.", file=sys.stderr)
    stale_ids = plan.stale_ids
    if stale_ids:  # printed even with --quiet: earlier grades are being replaced
        print(f"streamconform: {plan.stale_text()}, grading {'it' if len(stale_ids) == 1 else 'them'} again "
              f"(earlier records kept in {store.superseded_dir})", file=sys.stderr)
    progress = BatchProgress(len(pending), quiet=args.quiet)
    if not args.quiet:
        progress.console.print(f"{len(items)} submissions: {plan.kept} already graded, {len(pending)} to grade"
                               + (f" ({len(stale_ids)} stale)" if stale_ids else "")
                               + f" (profile {runner.profile_name()}, concurrency {args.concurrency})")

    def persist(record: dict[str, Any]) -> None:
        if record["id"] in stale_ids:
            store.supersede(record["id"])
        store.write(record)  # the commit point: once this returns the grade survives anything
        try:
            write_submission_exports(out, record)
        except OSError as exc:  # the grade is saved; write_batch_exports tries these files again at the end
            progress.console.print(f"streamconform: warning: {record['id']!r}: feedback files not written: {exc}",
                                   markup=False)

    unsaved: dict[str, dict[str, Any]] = {}

    def on_unsaved(record: dict[str, Any]) -> None:  # printed even with --quiet: a grade is missing from disk
        unsaved[record["id"]] = record
        progress.console.print(f"streamconform: error: {record['id']!r}: {record['attempts'][-1]['error']}",
                               markup=False)

    # Checks run in worker threads (evaluate_in_thread): hand the GIL back to the event loop within 1 ms rather
    # than the default 5 ms, so reads of other streams are timestamped when they arrive.
    sys.setswitchinterval(0.001)
    extra_columns = list(dict.fromkeys(c for s in subs for c in s.extra))
    try:
        with progress:
            policy = AttemptPolicy(retry_delay_s=args.retry_delay)
            if getattr(args, "ray", None):  # the same attempts on a Ray cluster, written here (distributed/)
                from harness.distributed.grade_tasks import grade_all_on_ray

                def on_ray(located: list[dict[str, Any]]) -> None:
                    if not args.quiet:
                        progress.console.print(f"Ray: grading on {len(located)} node(s), up to "
                                               f"{args.concurrency} at once on each", markup=False)

                grade_all_on_ray(pending, runner, persist, address=args.ray, concurrency=args.concurrency,
                                 policy=policy, on_done=progress.done, on_unsaved=on_unsaved, on_ready=on_ray)
            elif (args.processes or 1) > 1:  # the same attempts in local processes, written here
                from harness.distributed.grade_processes import grade_all_in_processes

                def on_processes(started: list[dict[str, Any]]) -> None:
                    if not args.quiet:
                        progress.console.print(f"grading in {len(started)} processes, "
                                               f"{'+'.join(str(p['concurrency']) for p in started)} at once",
                                               markup=False)

                grade_all_in_processes(pending, runner, persist, processes=args.processes,
                                       concurrency=args.concurrency, policy=policy, on_done=progress.done,
                                       on_unsaved=on_unsaved, on_ready=on_processes)
            else:
                asyncio.run(grade_all(pending, runner, persist, concurrency=args.concurrency, policy=policy,
                                      on_done=progress.done, on_unsaved=on_unsaved))
    except KeyboardInterrupt:
        # What finished is on disk; export it so the partial grades are usable, then stop as interrupted.
        write_batch_exports(out, [s.id for s in subs], store, extra_columns, runner.profile_name(), unsaved)
        raise
    summary = write_batch_exports(out, [s.id for s in subs], store, extra_columns, runner.profile_name(), unsaved)
    if args.submission_reports:
        from reports import write_grading

        write_grading(summary, out)  # per-submission reports, then summary.html again with links to them
    if not args.quiet:
        by_status = ", ".join(f"{k} {v}" for k, v in summary["by_status"].items())
        progress.console.print(f"graded {summary['graded']}/{summary['total']}: {summary['passed']} passed; "
                               f"{by_status}; {profile_label(summary)}. Grades: {out / 'grades.csv'}, "
                               f"summary: {out / 'summary.html'}", markup=False)
        for hint in rerun_hints(summary, allow_private=args.allow_private):
            progress.console.print(hint, markup=False)
    problem = write_summary_json(args.json_path, summary)
    failed = summary["by_status"].get("error", 0)
    if failed:
        progress.console.print(failure_text(failed, len(unsaved)), markup=False)
    if problem:  # the grades are saved; only this copy of the summary is missing
        raise ConfigError(f"{problem} (the grades are in {out}; exit code 2 is for the output)")
    return 1 if failed else 0


def write_summary_json(path: str | None, summary: dict[str, Any]) -> str | None:
    """--json: the summary to PATH or stdout ('-'); why it could not be written, or None."""
    import json

    from harness.cli.options import write_output

    if not path:
        return None
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    if path == "-":
        sys.stdout.write(text + "\n")
        return None
    return write_output("--json", path, text)


def failure_text(failed: int, unsaved: int) -> str:
    """The closing line when some rows are ``error``: where their detail is, and how to grade them again."""
    where = "detail in their result files"
    if unsaved:
        where = (f"{unsaved} of them could not be saved (disk full or not writable?): the reason is in summary.json "
                 "and summary.html" + (", the others' in their result files" if unsaved < failed else ""))
    return (f"the grader failed on {failed} submission(s) (status error, {where}); rerun the same command to grade "
            "them again")
