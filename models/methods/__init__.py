"""One module per method; importing them registers them."""
