"""The README's first step: write a small data set (numbers and their squares) into its output."""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True, help="the step's output folder (PipelineData)")
args = parser.parse_args()

os.makedirs(args.out, exist_ok=True)
rows = [{"x": x, "y": x * x} for x in range(50)]
with open(os.path.join(args.out, "data.json"), "w") as f:
    json.dump(rows, f)
print(f"wrote {len(rows)} rows")
