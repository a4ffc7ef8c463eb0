"""``Database``: the nameko dependency every service declares as ``db``; ``self.db()`` gives a
SQLAlchemy session factory on the service's own database (``berth.db`` makes the engine)."""
from __future__ import annotations

from nameko.extensions import DependencyProvider
from sqlalchemy.orm import sessionmaker

from berth.db import make_engine
from berth.settings import get_settings


class Database(DependencyProvider):
    """Injects a session factory: ``with self.db() as session: ...``."""

    def __init__(self, url: str | None = None):
        self.url = url

    def setup(self):
        url = (self.url or self.container.config.get("DATABASE_URL")
               or get_settings().database_url_for(self.container.service_name))
        self.engine = make_engine(url)
        self.sessionmaker = sessionmaker(bind=self.engine, expire_on_commit=False)

    def stop(self):
        self.engine.dispose()

    def kill(self):
        self.engine.dispose()

    def get_dependency(self, worker_ctx):
        return self.sessionmaker
