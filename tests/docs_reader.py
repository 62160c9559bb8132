"""The reader's state that the user guide's continuing blocks assume, made for real.

tests/test_docs.py runs this after the guide's self-standing blocks and before the blocks that
continue the reader's own objects: the files they upload, images and tables on the default
datastore, a model folder, four steps `a`-`d`, and a small pipeline (`prepare` -> `train`,
with the parameter `lr`, the output `model` and a report in outputs/) run once as `run`, and
published twice more for the endpoint and trigger blocks. Names follow the guide.
"""

import functools
import http.server
import os
import threading
from pathlib import Path

import pyarrow
import pyarrow.parquet

from headrace import (
    Dataset,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
)

ds = ws.get_default_datastore()  # noqa: F821 (ws: the guide's own)

for folder in ("data", "mnist/3", "people", "models", "reader_steps"):
    Path(folder).mkdir(parents=True, exist_ok=True)
Path("data/titanic.csv").write_text("name,age\nAllen,29\nBonnell,58\n")
Path("data/cabins.csv").write_text("cabin,deck\nB5,B\n")
files = ["data/titanic.csv", "data/cabins.csv"]
for i in range(3):
    Path(f"mnist/3/{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes([i]))
ds.upload("mnist", target_path="mnist", show_progress=False)
Path("people/a.csv").write_text("name,age,when\nAda,36,2024-01-02\nAlan,41,2024-02-03\n")
ds.upload("people", target_path="people", show_progress=False)
Path("tables/events/2024").mkdir(parents=True, exist_ok=True)
Path("tables/logs").mkdir(parents=True, exist_ok=True)
pyarrow.parquet.write_table(pyarrow.table({"event": ["start"]}), "tables/events/2024/a.parquet")
Path("tables/logs/a.jsonl").write_text('{"level": "info"}\n')
ds.upload("tables", show_progress=False)  # events/... and logs/...
Path("models/model.pkl").write_bytes(b"weights")
train_ds = Dataset.File.from_files((ds, "people/*.csv")).register(ws, "training-files")  # noqa: F821
# The guide's URL dataset, served from this machine (tests have no internet).
Path("data/iris.csv").write_text("sepal,petal\n5.1,1.4\n")
iris = http.server.ThreadingHTTPServer(
    ("127.0.0.1", 0), functools.partial(http.server.SimpleHTTPRequestHandler, directory="data")
)
threading.Thread(target=iris.serve_forever, daemon=True).start()
incoming = str(Path("data").absolute() / "*.csv")  # their /data/incoming
iris_url = f"http://127.0.0.1:{iris.server_address[1]}/iris.csv"

Path("reader_steps/prepare.py").write_text(
    "import argparse, os\n"
    "p = argparse.ArgumentParser(); p.add_argument('--out'); a = p.parse_args()\n"
    "os.makedirs(a.out, exist_ok=True)\n"
    "open(os.path.join(a.out, 'rows.csv'), 'w').write('x\\n1\\n')\n"
)
Path("reader_steps/train.py").write_text(
    "import argparse, os\n"
    "from headrace import Run\n"
    "p = argparse.ArgumentParser()\n"
    "for name in ('--data', '--model', '--lr'): p.add_argument(name)\n"
    "a = p.parse_args()\n"
    "os.makedirs(a.model, exist_ok=True)\n"
    "open(os.path.join(a.model, 'model.txt'), 'w').write(a.lr)\n"
    "os.makedirs('outputs', exist_ok=True)\n"
    "open('outputs/report.md', 'w').write('# lr ' + a.lr)\n"
    "Run.get_context().log('accuracy', 0.9)\n"
)
prepared = PipelineData("prepared")
model = PipelineData("model", pipeline_output_name="model")
lr = PipelineParameter("lr", default_value=0.1)
prepare = PythonScriptStep("prepare.py", name="prepare", arguments=["--out", prepared],
                           outputs=[prepared], source_directory="reader_steps")  # fmt: skip
train = PythonScriptStep("train.py", name="train",
                         arguments=["--data", prepared, "--model", model, "--lr", lr],
                         inputs=[prepared], outputs=[model], source_directory="reader_steps")  # fmt: skip
pipeline = Pipeline(ws, [prepare, train])  # noqa: F821
exp = Experiment(ws, "titanic")  # noqa: F821
run = exp.submit(pipeline)
run.wait_for_completion(show_output=False)
a, b, c, d = (
    PythonScriptStep("prepare.py", name=name, source_directory="reader_steps") for name in "abcd"
)
new_published = pipeline.publish(name="train", version="2.0")
newer_published = pipeline.publish(name="train", version="3.0")
train_published = pipeline.publish(name="train-for-trigger")
score_published = pipeline.publish(name="score-for-trigger")
os.environ.setdefault("SMTP_PASSWORD", "not-a-real-password")
