"""``edgekit pipeline`` and ``edgekit check``: the whole chain in one command, its reports and its CI gate.

Submodules are imported where needed: ``report`` is framework- and numpy-free (baselines are read with
it); ``run`` drives the converters; ``html`` needs matplotlib.
"""
