def seed():
    """Demo instances and requests in varied states (built with the request workflow)."""
    return "no demo requests yet"
