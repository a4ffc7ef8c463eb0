# Stand-in for redis:7: Debian's redis-server (7.0), run as the redis user; compose gives the
# command line (no persistence: the gateway's rate-limit counters only live for a window).
ARG BASE=berth-offline/bookworm:1
FROM ${BASE}
RUN apt-get update && apt-get install -y redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
ENV LANG=C.UTF-8
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
