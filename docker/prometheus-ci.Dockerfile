# CI only (docker/compose.ci.yml): a stand-in for prom/prometheus, which cannot be pulled on the
# CI machines (no registry). Debian's prometheus package on the locally made Debian base, laid out
# like the official image: entrypoint prometheus, data in /prometheus, runs as nobody (65534), and
# wget for the compose healthcheck (busybox's wget in the official image).
ARG BASE_IMAGE=localhost/debian:bookworm-slim
FROM ${BASE_IMAGE}
# Versions come from the Debian release of the base image; pinning them here would only break the
# build at the next point release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus wget \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus \
 && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
