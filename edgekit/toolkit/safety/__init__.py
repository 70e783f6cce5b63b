"""Models are programs: the loading policy (``policy``), the pickle opcode scan (``pickles``) and the forked
worker that loads and converts untrusted files (``isolation``)."""
