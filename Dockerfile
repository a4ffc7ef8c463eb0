# One image for every Berth process: the five services and the gateway.
# Build: docker build -t berth:latest .     Run: see docker-compose.yml
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY berth ./berth
COPY gateway ./gateway
COPY services ./services
# wheels for the project and every dependency, so the final stage needs no compiler or cache
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    BERTH_VAR_DIR=/srv/berth/var BERTH_ENV=production
RUN useradd --system --uid 10001 --home-dir /srv/berth --create-home berth
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels berth && rm -rf /wheels
COPY gateway/gunicorn.conf.py /srv/berth/gunicorn.conf.py
WORKDIR /srv/berth
USER berth
# each compose service picks its process; this default is the gateway
EXPOSE 8000
CMD ["gunicorn", "-c", "/srv/berth/gunicorn.conf.py", "gateway.wsgi:app"]
