"""HTTP routers of the Data Platform: thin, one per resource."""
