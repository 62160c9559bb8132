"""Step 2, train one model (the pipeline runs this script three times in parallel, once per
model): fit it on the training set, score it on the test set, log the metrics on this step
run, and save the fitted model into this step's output folder."""

import argparse
import os
import time

import joblib
import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from headrace import Run

parser = argparse.ArgumentParser()
parser.add_argument("--model", choices=["logreg", "forest", "svm"], required=True)
parser.add_argument("--data", required=True, help="the prepare step's output folder")
parser.add_argument("--model-dir", required=True, help="folder to write model.joblib into")
parser.add_argument("--n-estimators", type=int, default=100, help="trees of the forest")
args = parser.parse_args()

data = np.load(os.path.join(args.data, "digits.npz"))
models = {
    "logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "forest": lambda: RandomForestClassifier(n_estimators=args.n_estimators, random_state=0),
    "svm": lambda: SVC(gamma=0.001, C=10.0),
}
model = models[args.model]()

started = time.perf_counter()
model.fit(data["x_train"], data["y_train"])
fit_seconds = time.perf_counter() - started
predicted = model.predict(data["x_test"])
truth = data["y_test"]

run = Run.get_context()
run.tag("model", args.model)
accuracy = accuracy_score(truth, predicted)
run.log("accuracy", accuracy)
run.log("f1_macro", f1_score(truth, predicted, average="macro"))
run.log("fit_seconds", fit_seconds)
precision, recall, f1, _support = precision_recall_fscore_support(truth, predicted)
run.log_list("recall_per_digit", [round(float(r), 4) for r in recall])
for digit in range(10):
    run.log_row(
        "per_digit",
        digit=digit,
        precision=round(float(precision[digit]), 4),
        recall=round(float(recall[digit]), 4),
        f1=round(float(f1[digit]), 4),
    )
matrix = confusion_matrix(truth, predicted, labels=list(range(10)))
table = {"true_digit": list(range(10))}
table.update({f"predicted_{d}": [int(v) for v in matrix[:, d]] for d in range(10)})
run.log_table("confusion_matrix", table)

os.makedirs(args.model_dir, exist_ok=True)
joblib.dump(model, os.path.join(args.model_dir, "model.joblib"))
print(f"{args.model}: accuracy {accuracy:.4f} (fit in {fit_seconds:.2f} s)")
