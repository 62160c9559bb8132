"""Step 3, compare: score every trained model on the same test set, pick the most accurate,
log the comparison (on this step and the pipeline run), and write comparison.json plus a copy
of the best model into this step's output folder."""

import argparse
import json
import os
import shutil

import joblib
import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from headrace import Run

parser = argparse.ArgumentParser()
parser.add_argument("--data", required=True, help="the prepare step's output folder")
parser.add_argument("--model", nargs=2, action="append", required=True, metavar=("NAME", "FOLDER"))
parser.add_argument("--output", required=True)
args = parser.parse_args()

data = np.load(os.path.join(args.data, "digits.npz"))
with open(os.path.join(args.data, "split.json")) as fh:
    split = json.load(fh)

scores = []
for name, folder in args.model:
    predicted = joblib.load(os.path.join(folder, "model.joblib")).predict(data["x_test"])
    scores.append(
        {
            "model": name,
            "accuracy": round(float(accuracy_score(data["y_test"], predicted)), 4),
            "f1_macro": round(float(f1_score(data["y_test"], predicted, average="macro")), 4),
            "folder": folder,
        }
    )
scores.sort(key=lambda s: (-s["accuracy"], s["model"]))
best = scores[0]

run = Run.get_context()
run.log_table(
    "model_comparison",
    {key: [s[key] for s in scores] for key in ("model", "accuracy", "f1_macro")},
)
run.log("best_accuracy", best["accuracy"])
run.tag("best_model", best["model"])
run.parent.log("best_accuracy", best["accuracy"])
run.parent.tag("best_model", best["model"])

os.makedirs(args.output, exist_ok=True)
shutil.copyfile(
    os.path.join(best["folder"], "model.joblib"), os.path.join(args.output, "best_model.joblib")
)
result = {
    "best_model": best["model"],
    "best_accuracy": best["accuracy"],
    "split": split,
    "models": [{k: v for k, v in s.items() if k != "folder"} for s in scores],
}
with open(os.path.join(args.output, "comparison.json"), "w") as fh:
    json.dump(result, fh, indent=2)
for s in scores:
    print(f"{s['model']:>7}: accuracy {s['accuracy']:.4f}, macro F1 {s['f1_macro']:.4f}")
print(f"best: {best['model']} ({best['accuracy']:.4f})")
