"""Topic matching, as the MatchTopics stage (stages/match.py) and the CLI use it.

The code lives in the `pipeline.topics` package, one module per concern; this module keeps the
names importable from where they always were.
"""

from pipeline.topics import *  # noqa: F401,F403
from pipeline.topics import __all__  # noqa: F401
