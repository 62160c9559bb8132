"""`python -m headrace.engine.sqlrun --script x.sql ...`: a SqlStep recorded before SqlStep
became a kind package (headrace.kinds.sql) keeps running. Its argv becomes a `SqlSpec` and
runs as a step of the `sql` kind; new steps run `python -m headrace.kinds`."""

import sys

from headrace.kinds.sql.program import legacy_main

if __name__ == "__main__":
    sys.exit(legacy_main())
