"""ragloom.generator: plan, templates, backends, validation, pipeline, exports and the CLI."""

from .config import RunConfig, load_config
from .plan import make_plan
from .quality.parsing import parse_pair
from .templates import Templates
from .types import PARADIGMS, Exemplar, Job, Pair

__all__ = ["PARADIGMS", "Exemplar", "Job", "Pair", "RunConfig", "Templates", "load_config", "make_plan", "parse_pair"]
