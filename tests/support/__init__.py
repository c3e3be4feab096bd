"""Test fixtures built in code: wheels, PEP 503 indexes, servers on 127.0.0.1."""
