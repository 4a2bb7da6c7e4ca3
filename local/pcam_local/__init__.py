"""pcam_local: the `pcam` command line and the embedded local stack (moto server + local runtime).

Cloud code (functions/, shared/) never imports this package; this package imports cloud code.
"""

# The local SageMaker's quota of transform instances of one type running at once. It equals the template's
# MaxConcurrentTransformJobs default (a unit test keeps them equal), so the local stack rehearses the cap.
TRANSFORM_QUOTA = 2
