"""Seed-flow step 3: compare the model with the extracted features; `--param1` is the
pipeline parameter `pipeline_arg`."""

import argparse
import json
import os

from headrace.compat.azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--comp_data1", required=True)
parser.add_argument("--comp_data2", required=True)
parser.add_argument("--output_data", required=True)
parser.add_argument("--param1", type=int, required=True)
args = parser.parse_args()

with open(os.path.join(args.comp_data1, "model.json")) as fh:
    model = json.load(fh)
with open(os.path.join(args.comp_data2, "features.json")) as fh:
    features = json.load(fh)

lines = [f"{group} {word} {model[group][word]}" for group, word in sorted(features.items())]
lines.append(f"param1={args.param1}")
os.makedirs(args.output_data, exist_ok=True)
with open(os.path.join(args.output_data, "comparison.txt"), "w") as fh:
    fh.write("\n".join(lines) + "\n")

Run.get_context().log("param1", args.param1)
print(f"compared {len(features)} groups with param1={args.param1}")
