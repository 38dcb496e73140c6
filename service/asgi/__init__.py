"""What every HTTP route shares, below both HTTP APIs (textserve's own in ``http/`` and the
Open Inference Protocol's in ``v2/``): errors that carry their status, request checks, body
reading, request deadlines, and the per-request envelope (request id, metrics, access log,
the last-resort 500)."""
