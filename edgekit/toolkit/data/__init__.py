"""Real data first: the digits set, user .npz files and image folders (``datasets``), and calibration data
resolved for a model (``calibration``)."""
