"""Topics: what the monitor looks for, and how an article is scored against it.

One module per concern:
  text.py   site chrome removal, words, the lead, the tokenised article
  query.py  the query language (lexer, parser, AST)
  topic.py  the compiled Topic, Rule, Exemplar, Example
  files.py  topic files (YAML) -> Topic, with errors naming the file, the line and the fix
  score.py  scoring an article: clauses, exemplars, the learned model; evidence and explain()
  learn.py  features, training and cross-validation of a topic's relevance model
"""

from pipeline.topics.files import load_topic, load_topics
from pipeline.topics.query import QueryError, parse_query
from pipeline.topics.score import check_examples, explain, match_article, should_alert
from pipeline.topics.text import strip_chrome
from pipeline.topics.topic import Example, Exemplar, Rule, Topic

__all__ = [
    "Topic",
    "Rule",
    "Exemplar",
    "Example",
    "QueryError",
    "parse_query",
    "strip_chrome",
    "load_topic",
    "load_topics",
    "match_article",
    "explain",
    "should_alert",
    "check_examples",
]
