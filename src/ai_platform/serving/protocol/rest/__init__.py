"""HTTP translations of the data plane's operations."""
