"""Docker engines, for the two services that talk to them (containers and traffic) and no
other: ``engines`` (a client per engine, TLS, the labels Berth puts on its copies),
``provider`` (the nameko dependency that owns the clients for a service's life) and
``sealing`` (engine TLS keys sealed at rest)."""
