"""Tests of the emulator's own parts that need no running stack: upstream moto held to what the local stack's
patches assume (``*_contract.py``), and the local SageMaker's network isolation. The local stack as a whole is
tested by tests/integration."""
