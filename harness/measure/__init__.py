"""measure: numbers from one captured exchange, below the checks that judge them: ``transcript`` (a capture
parsed, decoded and measured once: ``Transcript``, ``transcript_of``), ``metrics`` (TTFB, TTFT, tokens/s, ITL,
bursts) and ``tokens`` (token-count methods).
"""
