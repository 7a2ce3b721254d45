"""HTTP routes, one module per area; each handler parses, calls one domain method, returns."""
