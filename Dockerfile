# One image for every Berth process: the five services and the gateway.
#   docker build -t berth:latest .                  (then see docker-compose.yml)
# Build arguments:
#   PYTHON_IMAGE   the base, default python:3.11-slim-bookworm. Without a registry,
#                  deploy/offline/build-images makes a stand-in from Debian packages.
#   NODE_IMAGE     the web console's build stage (Node.js 18 or newer with npm), default
#                  node:20-bookworm-slim; offline: berth-offline/node:18 (Debian's nodejs).
#   BUILD_CA_CERT  PEM of extra CAs the build stages trust to reach the package indexes (a
#                  TLS-intercepting proxy). Used only in the build stages, never in the image.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# The web console (web/): npm ci from the committed lock file, then vite build into dist/;
# the gateway serves it at / from BERTH_WEB_DIR. No Node in the final image.
FROM ${NODE_IMAGE} AS web
ARG BUILD_CA_CERT=""
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN set -eu; \
    if [ -n "$BUILD_CA_CERT" ]; then \
      printf '%s\n' "$BUILD_CA_CERT" >/tmp/ca.pem; export NODE_EXTRA_CA_CERTS=/tmp/ca.pem; \
    fi; \
    npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM ${PYTHON_IMAGE} AS build
ARG BUILD_CA_CERT=""
RUN python3 -m venv /opt/venv
WORKDIR /src
# the dependencies first, in a layer of their own that only pyproject.toml decides: a change
# to Berth's code rebuilds the layer below (seconds), not this one (a minute of downloads)
COPY pyproject.toml ./
RUN set -eu; \
    if [ -n "$BUILD_CA_CERT" ]; then \
      cat /etc/ssl/certs/ca-certificates.crt >/tmp/ca.pem; \
      printf '%s\n' "$BUILD_CA_CERT" >>/tmp/ca.pem; export PIP_CERT=/tmp/ca.pem; \
    fi; \
    /opt/venv/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' >/tmp/requirements.txt; \
    /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt "setuptools>=68"; \
    /opt/venv/bin/python -m compileall -q /opt/venv >/dev/null
COPY README.md ./
COPY berth ./berth
COPY gateway ./gateway
COPY services ./services
# then the project itself into /opt/venv (its dependencies are there already: --no-deps, and
# no isolated build environment to download setuptools into); the final stage copies only that
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
      --no-build-isolation . \
    && /opt/venv/bin/python -m compileall -q /opt/venv >/dev/null

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    BERTH_VAR_DIR=/srv/berth/var BERTH_ENV=production
RUN groupadd --system --gid 10001 berth \
    && useradd --system --uid 10001 --gid 10001 --home-dir /srv/berth --create-home berth
COPY --from=build /opt/venv /opt/venv
COPY --from=web /web/dist /srv/berth/web
ENV BERTH_WEB_DIR=/srv/berth/web
COPY gateway/gunicorn.conf.py /srv/berth/gunicorn.conf.py
WORKDIR /srv/berth
USER 10001:10001
# each compose service picks its process; this default is the gateway
EXPOSE 8000
CMD ["gunicorn", "-c", "/srv/berth/gunicorn.conf.py", "gateway.wsgi:app"]
