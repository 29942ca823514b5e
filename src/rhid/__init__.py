"""rhid: Route Health Injection for HAProxy and BIRD."""

__version__ = "0.1.0"
