"""Seed-flow step 1: "train" on the uploaded 20news.pkl: count the words of each newsgroup.

Written as an SDK v1 script would be, with the compat import; runs unchanged on Azure ML v1
after changing `headrace.compat.azureml.` back to `azureml.`.
"""

import argparse
import json
import os
import pickle
from collections import Counter

from headrace.compat.azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--input", required=True)
parser.add_argument("--output", required=True)
args = parser.parse_args()

with open(args.input, "rb") as fh:
    documents = pickle.load(fh)  # {"group": ["text", ...], ...}

model = {group: Counter(" ".join(texts).split()) for group, texts in documents.items()}
os.makedirs(args.output, exist_ok=True)  # SDK v1 scripts create their output folder
with open(os.path.join(args.output, "model.json"), "w") as fh:
    json.dump(model, fh, sort_keys=True)

run = Run.get_context()
run.log("groups", len(model))
print(f"trained on {sum(len(t) for t in documents.values())} documents in {len(model)} groups")
