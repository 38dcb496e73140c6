"""What the service keeps in a request's ASGI scope, for the code that reads it later."""

REQUEST_ID_KEY = "textserve.request_id"  # set by RequestMiddleware, read by error bodies
ROUTE_KEY = "textserve.route"  # set by handlers that run outside the router (the lean /predict)
TEXTS_KEY = "textserve.texts"  # number of texts, for the access log
