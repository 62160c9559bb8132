"""`python -m headrace.engine.sparkrun ...`: how SparkSteps were recorded before SparkStep
became a kind package (headrace.kinds.spark). Graphs stored then (published pipelines, runs
to rerun) still name this module; it hands their argv to the kind's compatibility entry,
`headrace.kinds.spark.legacy`, which reads it into a SparkSpec and runs the kind's program.

The one import from the engine up into a kind, allowed by name in the import-linter layers
contract: only the step's process runs this module, nothing imports it.
"""

import sys

from headrace.kinds.spark.legacy import main

if __name__ == "__main__":
    sys.exit(main())
