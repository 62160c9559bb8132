"""The headrace server: REST API, published-pipeline endpoints and agents (issue 3)."""
