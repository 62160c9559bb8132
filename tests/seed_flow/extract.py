"""Seed-flow step 2: extract the most frequent word of each group from the trained model."""

import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--input_data", required=True)
parser.add_argument("--output_data", required=True)
args = parser.parse_args()

with open(os.path.join(args.input_data, "model.json")) as fh:
    model = json.load(fh)

top = {group: max(sorted(counts), key=counts.__getitem__) for group, counts in model.items()}
os.makedirs(args.output_data, exist_ok=True)
with open(os.path.join(args.output_data, "features.json"), "w") as fh:
    json.dump(top, fh, sort_keys=True)
print(f"extracted {top}")
