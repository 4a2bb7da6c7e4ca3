"""pcam_local: the embedded local stack, an emulator of the AWS the pipeline runs on: moto server
(`moto_server`, `moto_launcher`, `moto_patches`, `s3_bodies`, `s3_writes`, `s3_clock`), template.yaml read
(`template`) and deployed into it (`stack`), the local runtime that polls the queues and calls the handlers
(`runtime`, `schedules`), the local SageMaker that really trains and scores (`local_sagemaker` answers its API,
`local_job_runner` runs its jobs with `local_trainer`, `local_tuning`, `local_transform`, `local_processing`),
the offline IAM check (`iam_check`, `iam_calls`, `iam_needs`, `iam_policies`), a clock tests move and the
bucket's lifecycle rules applied as it moves (`clock`, `lifecycle`), all started together by
`local_stack.LocalStack`.

Cloud code (functions/, shared/) never imports this package; this package imports cloud code. The operator's
tools are `pcam_ops`; synthetic data is `pcam_synth`.
"""

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_SESSION_TOKEN": "local"}

# The local SageMaker's quota of transform instances of one type running at once. It equals the template's
# MaxConcurrentTransformJobs default (a unit test keeps them equal), so the local stack rehearses the cap.
TRANSFORM_QUOTA = 2

# Lambda's default concurrency quota per region; a new account may have far less (10). The local server
# answers GetAccountSettings with the value the local stack simulates (moto_launcher).
DEFAULT_ACCOUNT_CONCURRENCY = 1000
ACCOUNT_CONCURRENCY_VARIABLE = "PCAM_LOCAL_ACCOUNT_CONCURRENCY"
