"""The model contract every stage speaks: formats recognised from bytes, the I/O contract, typed options,
artifacts and their sidecars, the converter/runtime registry, and the one error tree."""
