"""Adapter and contract tests: the AWS adapters and the Lambda entry points on in-process moto, each fake held to
the adapter it stands for (``*_contract.py``), and upstream moto held to what the local stack's patches assume.
The domain's unit tests (tests/unit) run on the fakes only: tests/unit/test_test_layout.py keeps it so."""
