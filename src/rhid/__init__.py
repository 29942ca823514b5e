"""rhid: Route Health Injection for HAProxy and BIRD."""

__version__ = "0.2.0"
