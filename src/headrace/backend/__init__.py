"""The seam between SDK objects and where state lives: the `Backend` protocol and its
implementations (`LocalBackend` for a workspace folder)."""
