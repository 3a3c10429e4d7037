"""The HTTP face of the server: FastAPI app, REST routes, responses and the CapabilityStatement."""
