"""pcam_local: the `pcam` command line and the embedded local stack (moto server + local runtime).

Cloud code (functions/, shared/) never imports this package; this package imports cloud code.
"""
