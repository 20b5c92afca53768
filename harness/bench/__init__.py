"""bench: load-benchmark one streaming endpoint. ``cli`` (``streamconform bench``), ``load`` (closed and open
loops, overhead monitor), ``request`` (one request -> record), ``stats`` (percentiles, SLOs, goodput, compare),
``render`` (terminal tables), ``server`` (the reference server in a child process), ``fixture`` (pytest-benchmark).
"""
