"""The nameko side of ``berth.docker.engines``: a dependency that owns a service's engine
clients (``EnginePool``) from ``setup`` until the service stops or is killed."""
from __future__ import annotations

from nameko.extensions import DependencyProvider

from berth.docker.engines import EnginePool
from berth.settings import get_settings


class EnginePoolProvider(DependencyProvider):
    """Subclasses say where their TLS files go (``tls_dir``, under ``BERTH_VAR_DIR``), may
    size each engine's connection pool (``pool_size``), and build the dependency a worker
    gets from ``self.pool``."""

    tls_dir = "tls"

    def pool_size(self) -> int | None:
        """Connections per engine; None for the Docker SDK's default."""
        return None

    def setup(self):
        settings = get_settings()
        size = self.pool_size()
        self.pool = EnginePool(settings.var_dir / self.tls_dir, timeout=settings.docker_timeout,
                               **({"max_pool_size": size} if size is not None else {}))

    def stop(self):
        self.pool.close()

    def kill(self):
        self.pool.close()
