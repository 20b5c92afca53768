"""Batch grading: many submitted endpoint URLs in one command, safely, resumably, with exports.

    roster.py      read the roster (CSV or JSON lines) into Submissions; bad rosters are ConfigErrors
    thresholds.py  per-student threshold overrides (a roster column, or a generator seeded per id)
    urls.py        reject URLs that cannot be requested before any connection is tried
    attempt.py     the unit of work: one Submission in, one grade record out (retry, deadline, status)
    scoring.py     per-check weights -> score / max_score with partial credit
    store.py       one atomic JSON file per submission; resume = skip ids whose file is there
    lock.py        one grader per output folder (flock on OUT/.grade.lock, naming its holder)
    batch.py       bounded concurrency on one event loop
    feedback.py    what a student may see (no instructor-only detail)
    exports.py     grades.csv, Gradescope results.json, feedback files, summary.json / summary.html
    progress.py    rich progress bar (or plain lines, or nothing with --quiet)
    cli.py         `streamconform grade`
"""

GRADE_FORMAT = 1  # version of the per-submission grade record (schemas/grade.schema.json)
