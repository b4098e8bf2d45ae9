"""HTTP routers of the AI Platform: thin, one per resource."""
