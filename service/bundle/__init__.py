"""The contract with ``model_export``: the bundle format (manifest, sha256 of every file,
loading and verification), the one tokenizer, and the onnxruntime session for a bundle.

Nothing here reads the service's settings or knows about HTTP: the export step imports
this package and nothing else of the service.
"""
