"""Beyond one loop: `bench --processes`, `grade --processes`, and `bench --ray` / `grade --ray` on a Ray cluster
(the optional ``ray`` extra).

    process_workers.py  bench --processes N: the bench workers in N local processes (no Ray), one loop each
    grade_processes.py  grade --processes N: submissions graded in N local processes (no Ray), one loop each;
                      this process keeps the queue and writes the records, as the Ray driver does
    ray_backend.py    the one place that imports ray: --ray's address, connecting (or starting a local
                      Ray for the command), the install hint when ray is missing, a worker's node
    bench_workers.py  bench: one actor per --workers, spread over the nodes, each running the in-process
                      load loop (harness.bench.load.run_level) on its share of a level from a start time
                      the driver broadcasts; the driver merges the records into the same percentiles,
                      goodput and JSON
    grade_tasks.py    grade: one async actor per node, a submission per actor task running the same
                      attempt code (harness.grade.attempt.grade_one); records come back to the driver,
                      which writes them through the same store

Without --ray nothing here imports Ray, and nothing needs it.
"""
