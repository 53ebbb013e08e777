"""ragloom: turn any text corpus into retrieval-augmented instruction-tuning data."""

from pkgutil import extend_path

# A source checkout has a `ragloom/` folder that can shadow the installed package when
# the checkout is the working directory; extend_path lets `ragloom.generator` and
# `ragloom.retrieval` still resolve from the installed copy.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
