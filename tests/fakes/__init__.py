"""Loopback fakes of the services the function talks to, for the tests."""
