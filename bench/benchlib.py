"""What bench/api.py and bench/egress.py share: errors, settings from the
environment, free ports and percentiles.  Standard library only."""
import os
import re
import socket
import sys


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def env_count(name, default, minimum):
    v = os.environ.get(name, str(default))
    if not re.fullmatch(r"[0-9]+", v) or int(v) < minimum:
        die(f"{name} must be an integer >= {minimum}, not '{v}'")
    return int(v)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(samples, p):
    """Nearest-rank percentile."""
    s = sorted(samples)
    return s[max(0, min(len(s) - 1, int(round(p / 100 * len(s) + 0.5)) - 1))]
