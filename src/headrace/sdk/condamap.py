"""Conda packages as PyPI packages: what SDK v1 environments ask conda for, installed by uv.

SDK v1 built every environment with conda (`CondaDependencies.create(conda_packages=[...])`).
headrace builds environments with uv from PyPI, so a conda package is taken when PyPI has it
under the same name or a known other one (`PYPI_NAMES`, `SAME_NAME`), with its version
constraint translated; the rest (compilers, CUDA toolkits, R, system libraries) are
refused when the pipeline is validated, each named with what to do instead.

Maintained by hand: a package missing here is refused with a message saying to list it as
a pip package, which is always the way out. Keep both tables sorted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["CondaTranslation", "translate_conda_packages"]

# conda name -> PyPI name, where they differ.
PYPI_NAMES = {
    "py-opencv": "opencv-python",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "py-xgboost-gpu": "xgboost",
    "pytables": "tables",
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "pytorch-gpu": "torch",
    "pytorch-lightning": "pytorch-lightning",
    "tensorflow-gpu": "tensorflow",
    "tensorflow-cpu": "tensorflow-cpu",
    "libopencv": "opencv-python",
    "opencv": "opencv-python",
    "pyqt": "PyQt5",
    "msgpack-python": "msgpack",
    "ruamel_yaml": "ruamel.yaml",
    "lightgbm-cpu": "lightgbm",
    "keras-gpu": "keras",
}

# Packages conda-forge and the defaults channel publish under their PyPI name.
SAME_NAME = frozenset(
    """
    absl-py aiohttp altair appdirs arrow astropy attrs azure-storage-blob beautifulsoup4
    black bokeh boto3 botocore cachetools catboost certifi cffi chardet click cloudpickle
    colorama cryptography cython dask datasets decorator dill distributed fastapi
    fastparquet filelock flask fsspec gensim gunicorn h5py holoviews httpx huggingface_hub
    hyperopt idna imageio imbalanced-learn importlib-metadata iniconfig ipykernel ipython
    ipywidgets isort jinja2 jmespath joblib jsonschema jupyter jupyterlab keras lightgbm
    llvmlite lxml markdown markupsafe matplotlib mlflow more-itertools mpmath msgpack
    networkx nltk nose notebook numba numexpr numpy onnx onnxruntime openpyxl optuna
    packaging pandas paramiko patsy pillow plotly pluggy polars prophet protobuf psutil
    psycopg2 py pyarrow pyasn1 pycparser pydantic pygments pyjwt pymongo pyodbc pyparsing
    pyspark pytest python-dateutil pytz pyyaml pyzmq regex requests rich s3fs
    scikit-image scikit-learn scipy seaborn setuptools shap simplejson six sqlalchemy
    statsmodels sympy tabulate tensorboard tensorflow tensorflow-datasets threadpoolctl
    tokenizers toolz torchaudio torchtext torchvision tornado tqdm transformers typer
    typing-extensions typing_extensions tzdata ujson urllib3 uvicorn werkzeug wheel
    wrapt xarray xgboost xlrd xlsxwriter yarl zipp
    """.split()
)

# Conda packages with no PyPI equivalent that SDK v1 environments often list, with what to
# do instead.
NO_EQUIVALENT = {
    "cudatoolkit": "CUDA comes with the GPU wheels on PyPI (torch, tensorflow), or the machine",
    "cudnn": "cuDNN comes with the GPU wheels on PyPI (torch, tensorflow), or the machine",
    "mkl": "numpy and scipy wheels on PyPI bring their own BLAS",
    "openmpi": "install MPI on the machine; headrace runs one node per step (use Ray)",
    "gcc": "install compilers on the machine",
    "gxx": "install compilers on the machine",
    "r-base": "R is not a Python package: run R in a CommandStep with R installed on the machine",
}

# Left out: the installer itself (uv installs), and names that only pin the interpreter.
IGNORED = frozenset({"pip", "setuptools-scm-git-archive", "conda", "wheel"})

_SPEC = re.compile(r"^\s*(?:(?P<channel>[\w.\-/]+)::)?(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")


@dataclass(frozen=True)
class CondaTranslation:
    """What a list of conda packages becomes: PyPI requirements, a Python version (from a
    `python=3.10` entry), and the packages that cannot be installed, each with why."""

    requirements: tuple[str, ...] = ()
    python_version: str | None = None
    ignored: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def translate_conda_packages(packages: list[str]) -> CondaTranslation:
    requirements: list[str] = []
    ignored: list[str] = []
    problems: list[str] = []
    python_version = None
    for raw in packages:
        match = _SPEC.match(raw)
        if match is None:
            problems.append(f"{raw!r} is not a conda package specification")
            continue
        name = match.group("name").lower()
        constraint, error = _constraint(match.group("rest"))
        if name == "python":
            python_version = _python_version(constraint) or python_version
            continue
        if name in IGNORED:
            ignored.append(raw)
            continue
        if name in NO_EQUIVALENT:
            problems.append(f"{raw!r} has no PyPI equivalent ({NO_EQUIVALENT[name]})")
            continue
        pypi = PYPI_NAMES.get(name) or (name if name in SAME_NAME else None)
        if pypi is None:
            problems.append(
                f"{raw!r} is not a conda package headrace knows on PyPI (if PyPI has it, "
                "list it in pip_packages, under that name)"
            )
            continue
        if error:
            problems.append(f"{raw!r}: {error}")
            continue
        requirements.append(pypi + constraint)
    return CondaTranslation(tuple(requirements), python_version, tuple(ignored), tuple(problems))


def _constraint(rest: str) -> tuple[str, str | None]:
    """A conda version constraint ('=1.2', '1.2.*', '>=1,<2', '=1.2=py311_0') as PyPI's
    ('==1.2.*', '==1.2.*', '>=1,<2', '==1.2.*'); or an error saying why it cannot be."""
    text = rest.strip()
    if not text:
        return "", None
    if "|" in text:
        return "", "alternatives ('|') have no PyPI form; pick one version"
    if text.startswith("[") or "[" in text:
        return "", "conda's bracket options have no PyPI form; give a plain version"
    if text[0].isdigit() or text[0] == "*":
        text = "=" + text.replace(" ", "=", 1)  # 'numpy 1.26' is 'numpy=1.26'
    parts = []
    for piece in text.split(","):
        part = piece.strip()
        if part.startswith("=="):
            parts.append("==" + part[2:].split("=")[0])  # without a build string
        elif part[:2] in (">=", "<=", "!=", "~=") or part[:1] in "<>":
            parts.append(part)
        elif part.startswith("="):
            version = part[1:].split("=")[0]  # a build string after a second '=' is conda's
            if version in ("", "*"):
                continue
            parts.append(f"=={version}" if version.endswith("*") else f"=={version}.*")
        else:
            return "", f"version {part!r} is not one headrace can translate"
    return ",".join(parts), None


def _python_version(constraint: str) -> str | None:
    """'==3.10.*' -> '3.10'; '>=3.9' -> None (any Python meets it)."""
    if constraint.startswith("=="):
        return constraint[2:].removesuffix(".*").removesuffix("*").rstrip(".") or None
    return None
