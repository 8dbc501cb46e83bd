"""Whether a download host answers: downloads (tensorflow-datasets, ImageNet
weights) fail fast offline instead of hanging."""

import socket


def network_available(host="storage.googleapis.com", port=443, timeout=5.0):
    """Whether `host` accepts a connection on `port` within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
