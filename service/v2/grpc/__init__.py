"""The Open Inference Protocol over gRPC (``inference.GRPCInferenceService``, Triton's
superset of it) and ``grpc.health.v1``. Importing this package alone loads no grpcio."""

SERVICE = "inference.GRPCInferenceService"
# Probes, as for HTTP: no request metrics, and an access-log line only when they fail.
PROBES = frozenset(f"/{SERVICE}/{name}" for name in ("ServerLive", "ServerReady", "ModelReady"))
