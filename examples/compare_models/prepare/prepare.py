"""Step 1, prepare: load scikit-learn's bundled digits (no download), split them into a train
and a test set with a fixed seed, and save both into this step's output folder."""

import argparse
import json
import os

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from headrace import Run

parser = argparse.ArgumentParser()
parser.add_argument("--test-size", type=float, required=True)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--output", required=True, help="folder to write digits.npz into")
args = parser.parse_args()

features, labels = load_digits(return_X_y=True)
x_train, x_test, y_train, y_test = train_test_split(
    features, labels, test_size=args.test_size, random_state=args.seed, stratify=labels
)

os.makedirs(args.output, exist_ok=True)
np.savez_compressed(
    os.path.join(args.output, "digits.npz"),
    x_train=x_train,
    x_test=x_test,
    y_train=y_train,
    y_test=y_test,
)
meta = {"test_size": args.test_size, "seed": args.seed, "train": len(y_train), "test": len(y_test)}
with open(os.path.join(args.output, "split.json"), "w") as fh:
    json.dump(meta, fh)

run = Run.get_context()
run.log("train_rows", len(y_train))
run.log("test_rows", len(y_test))
print(f"digits: {len(y_train)} training and {len(y_test)} test images (test_size={args.test_size})")
