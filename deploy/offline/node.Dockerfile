# Stand-in for node:20-bookworm-slim in the Dockerfile's web console build stage: Debian's
# nodejs (18) and npm. npm ci still reaches the npm registry (the build uses the host's network).
ARG BASE=berth-offline/bookworm:1
FROM ${BASE}
RUN apt-get update && apt-get install -y nodejs npm \
    && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["node"]
