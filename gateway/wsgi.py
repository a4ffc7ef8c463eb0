"""WSGI entry point: ``gunicorn -c gateway/gunicorn.conf.py gateway.wsgi:app``."""
from berth.logs import configure_logging
from gateway.app import create_app

configure_logging("gateway")
app = create_app()
