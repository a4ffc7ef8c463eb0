"""Code shared by every Berth service and the gateway: settings, database, tokens, errors, events."""
import warnings

# eventlet announces its own deprecation on import; nameko 2.x still needs it (ENGINEERING.md)
warnings.filterwarnings("ignore", message=r"(?s).*Eventlet is deprecated")

SERVICES = ("users", "containers", "traffic", "billing", "alerts")
