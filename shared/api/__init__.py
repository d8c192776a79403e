"""The operator REST API (`/v1/...`): one route registry drives both the dispatcher and the OpenAPI
document, so what is documented is what is served."""
