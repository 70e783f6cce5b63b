"""Converters, one module per route (source format → target format).

Routes are registered as plain data in ``edgekit.toolkit.contract.registry.CONVERTERS``; a module here is
imported only when its route is used.
"""
