# Stand-in for postgres:16: Debian's postgresql-15, a cluster made at first start in
# /var/lib/postgresql/data from POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, password
# (scram) authentication over the network, run as the postgres user.
ARG BASE=berth-offline/bookworm:1
FROM ${BASE}
RUN apt-get update && apt-get install -y postgresql-15 \
    && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/15 \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data LANG=C.UTF-8
USER postgres
EXPOSE 5432
ENTRYPOINT ["postgres-entrypoint.sh"]
