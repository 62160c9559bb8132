"""Step 4, report: turn comparison.json into a short Markdown report. It is written to
./outputs, which headrace keeps as a run file of this step (outputs/report.md)."""

import argparse
import json
import os

from headrace import Run

parser = argparse.ArgumentParser()
parser.add_argument("--comparison", required=True, help="the compare step's output folder")
args = parser.parse_args()

with open(os.path.join(args.comparison, "comparison.json")) as fh:
    result = json.load(fh)
split = result["split"]

lines = [
    "# Digits: which model wins?",
    "",
    f"Test set: {split['test']} of {split['train'] + split['test']} images "
    f"(test_size={split['test_size']}, seed={split['seed']}).",
    "",
    "| model | accuracy | macro F1 |",
    "|---|---|---|",
]
for m in result["models"]:
    lines.append(f"| {m['model']} | {m['accuracy']:.4f} | {m['f1_macro']:.4f} |")
lines += [
    "",
    f"**Best model: {result['best_model']}** with accuracy {result['best_accuracy']:.4f}.",
    "",
]

os.makedirs("outputs", exist_ok=True)
with open(os.path.join("outputs", "report.md"), "w") as fh:
    fh.write("\n".join(lines))
Run.get_context().log("models_compared", len(result["models"]))
print("\n".join(lines))
