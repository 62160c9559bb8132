"""The README's second step: read the prepared rows, "train" a model of n estimators (a stand-in
that needs nothing but the standard library) and log its metrics on this step's run."""

import argparse
import json
import os

from headrace import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="the prep step's output folder")
parser.add_argument("--n", type=int, required=True, help="number of estimators")
args = parser.parse_args()

with open(os.path.join(args.data, "data.json")) as f:
    rows = json.load(f)

run = Run.get_context()
run.log("rows", len(rows))
run.log("n_estimators", args.n)
run.log("accuracy", round(1 - 1 / (1 + args.n), 4))
print(f"trained on {len(rows)} rows with {args.n} estimators")
