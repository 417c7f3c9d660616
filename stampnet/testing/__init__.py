"""Tools that check stampnet itself (``fuzz``: the readers against mutated real alerts)."""
