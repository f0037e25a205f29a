"""identity-stream: identify events in, resolved profiles out."""
