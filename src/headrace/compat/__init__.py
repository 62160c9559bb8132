"""Compatibility import trees for code written against other SDKs; only re-exports and adapts."""
