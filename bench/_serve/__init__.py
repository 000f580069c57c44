"""The parts of ``bench/serve.py``: ``data`` (the events it posts), ``server`` (starting and stopping
``flagstone serve``), ``latency`` (fixed-rate steps through ``loadgen``) and ``replay`` (scan vs
server on the same events, and the restart time). ``bench/serve.py`` parses the options and runs them.
"""
