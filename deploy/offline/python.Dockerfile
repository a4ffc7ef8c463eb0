# Stand-in for python:3.11-slim-bookworm: Debian's python3 (3.11) with venv.
ARG BASE=berth-offline/bookworm:1
FROM ${BASE}
RUN apt-get update && apt-get install -y python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
