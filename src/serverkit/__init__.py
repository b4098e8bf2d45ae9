"""What the servers share and user scripts never import: the HTTP boundary (error envelope,
API key and body limits), process trees, ports, the Ray runtime, record tables in Lance, and
the lean upstream client of the predict route."""
