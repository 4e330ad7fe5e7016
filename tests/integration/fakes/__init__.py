"""Test doubles for the end-to-end tests of the egress proxy and the
credential broker: a throwaway TLS CA (tls.py), a smart-HTTP git server
(gitserver.py) and a fake Anthropic Messages API (anthropic.py).

Standard library only; every server listens on 127.0.0.0/8.
"""
