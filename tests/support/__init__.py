"""Helpers the tests share: stubs of outside services, stores and harnesses."""
