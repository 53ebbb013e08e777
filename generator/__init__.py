"""ragloom.generator: plan, templates, backends, validation, pipeline, exports and the CLI."""

from .config import RunConfig, load_config
from .paradigms import PARADIGMS, Paradigm, register
from .plan import make_plan
from .quality import parse_pair
from .templates import Templates
from .types import Exemplar, Job, Pair

__all__ = [
    "PARADIGMS",
    "Exemplar",
    "Job",
    "Pair",
    "Paradigm",
    "RunConfig",
    "Templates",
    "load_config",
    "make_plan",
    "parse_pair",
    "register",
]
