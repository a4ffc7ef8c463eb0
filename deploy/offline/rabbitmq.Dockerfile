# Stand-in for rabbitmq:3.13: Debian's rabbitmq-server, configured from RABBITMQ_DEFAULT_USER
# and RABBITMQ_DEFAULT_PASS, data in /var/lib/rabbitmq, run as the rabbitmq user (so the
# healthcheck's rabbitmq-diagnostics finds the same Erlang cookie).
ARG BASE=berth-offline/bookworm:1
FROM ${BASE}
RUN apt-get update && apt-get install -y rabbitmq-server \
    && rm -rf /var/lib/apt/lists/* \
    && chown -R rabbitmq:rabbitmq /etc/rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
COPY rabbitmq-entrypoint.sh /usr/local/bin/
ENV HOME=/var/lib/rabbitmq LANG=C.UTF-8
USER rabbitmq
EXPOSE 5672
ENTRYPOINT ["rabbitmq-entrypoint.sh"]
