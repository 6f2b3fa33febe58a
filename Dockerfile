# dbstate as an image: the controller (`dbstate run`) watching a mounted desired-state repository and the Docker
# socket. BASE_IMAGE is any Debian-like image with Python >= 3.11 (python3-venv) and git; the default is the
# official slim Python image. Where Docker Hub is out of reach, build a base locally (see devtools/engine.py) and pass
# it: docker build --build-arg BASE_IMAGE=dbstate-dev/base:... -t dbstate .
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN command -v git >/dev/null || (apt-get update && apt-get install -y --no-install-recommends git \
      && rm -rf /var/lib/apt/lists/*) \
 && git config --system --add safe.directory '*'
# Extra CAs for the build's own downloads (a TLS-intercepting proxy): see .ca/README.md. Empty by default.
COPY .ca/ /usr/local/share/ca-certificates/dbstate-build/
RUN (ls /usr/local/share/ca-certificates/dbstate-build/*.crt >/dev/null 2>&1 && update-ca-certificates) || true
RUN python3 -m venv /opt/dbstate
COPY pyproject.toml README.md /src/
COPY controller /src/controller
RUN PIP_CERT=/etc/ssl/certs/ca-certificates.crt /opt/dbstate/bin/pip install /src && rm -rf /src

# A non-root user. It needs the Docker socket's group: docker run --group-add "$(stat -c %g /var/run/docker.sock)".
RUN groupadd --system --gid 10001 dbstate \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dbstate --create-home dbstate
USER 10001:10001
ENV PATH=/opt/dbstate/bin:$PATH DBSTATE_STATE=/var/lib/dbstate/state.db DOCKER_HOST=unix:///var/run/docker.sock
WORKDIR /var/lib/dbstate
VOLUME ["/var/lib/dbstate"]
EXPOSE 9464

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["dbstate"]
CMD ["run", "--dir", "/repo/desired-state", "--listen", "0.0.0.0:9464", "--log-format", "json"]
