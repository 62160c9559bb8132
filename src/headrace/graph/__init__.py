"""The pipeline as pure data (model) and checks over it (validate). No I/O, no headrace imports
beyond this package."""
