"""Modules generated from ../protos by ``python -m service.v2.grpc.stubs``; do not edit."""
