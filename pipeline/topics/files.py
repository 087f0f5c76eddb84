"""Topic files: strict schema, validated with line numbers taken from the YAML node tree, compiled
into `Topic`s."""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.errors import ConfigError
from pipeline.topics.learn import StaleModel, load_model
from pipeline.topics.query import Node, QueryError, parse_query
from pipeline.topics.score import _exemplar_vector
from pipeline.topics.topic import Example, Exemplar, Rule, Topic

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Topic files: strict schema, validated with line numbers taken from the YAML node tree.

_Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _RuleSpec(_Strict):
    name: _Slug
    query: Annotated[str, StringConstraints(min_length=1)]
    zone: Literal["title", "lead", "body", "any"] = "any"
    weight: float = Field(1.0, gt=0, le=5)


class _ExemplarSpec(_Strict):
    path: str | None = None
    text: str | None = None
    id: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> _ExemplarSpec:
        if (self.path is None) == (self.text is None):
            raise ValueError("an exemplar needs exactly one of 'path' (a seed file) or 'text' (inline)")
        return self


class _ExampleSpec(_Strict):
    text: str
    title: str = ""


class _ExamplesSpec(_Strict):
    must_match: list[_ExampleSpec] = []
    must_not_match: list[_ExampleSpec] = []
    # Training only (never checked): more texts labelled by whoever writes the topic, so the model
    # sees the topic's many phrasings and near misses without each one having to pass.
    train_about: list[_ExampleSpec] = []
    train_mentions: list[_ExampleSpec] = []
    train_no: list[_ExampleSpec] = []

    @field_validator("must_match", "must_not_match", "train_about", "train_mentions", "train_no", mode="before")
    @classmethod
    def _plain_strings_are_texts(cls, value: Any) -> Any:
        # A bare string is the article text with no title: the short form most examples use.
        if isinstance(value, list):
            return [{"text": v} if isinstance(v, str) else v for v in value]
        return value


class _TopicSpec(_Strict):
    id: _Slug
    description: str
    rules: list[_RuleSpec] = Field(min_length=1)
    exemplars: list[_ExemplarSpec] = []
    alert_threshold: float = Field(0.5, gt=0, le=1)
    mention_threshold: float = Field(0.2, gt=0, le=1)
    alert_on_mentions: bool = False
    exemplar_weight: float = Field(0.2, ge=0, le=1)
    examples: _ExamplesSpec = _ExamplesSpec()
    vocabulary: Annotated[str, StringConstraints(min_length=1)] | None = None
    require: list[_Slug] = []

    @model_validator(mode="after")
    def _thresholds_in_order(self) -> _TopicSpec:
        if self.mention_threshold > self.alert_threshold:
            raise ValueError(
                f"mention_threshold ({self.mention_threshold}) is above alert_threshold ({self.alert_threshold}); "
                "lower mention_threshold or raise alert_threshold"
            )
        return self


# Which schema applies at a location, to list the allowed keys when an unknown one turns up.
_MODEL_AT: dict[tuple[Any, ...], type[BaseModel]] = {
    (): _TopicSpec,
    ("rules", int): _RuleSpec,
    ("exemplars", int): _ExemplarSpec,
    ("examples",): _ExamplesSpec,
    ("examples", "must_match", int): _ExampleSpec,
    ("examples", "must_not_match", int): _ExampleSpec,
    ("examples", "train_about", int): _ExampleSpec,
    ("examples", "train_mentions", int): _ExampleSpec,
    ("examples", "train_no", int): _ExampleSpec,
}


def _allowed_keys(parent: Sequence[Any]) -> str:
    model = _MODEL_AT.get(tuple(k if isinstance(k, str) else int for k in parent), _TopicSpec)
    return ", ".join(model.model_fields)


def _line_of(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """Line (1-based) of the YAML node at a pydantic error location; the deepest one found."""
    if node is None:
        return None
    for key in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            match = next((v for k, v in node.value if k.value == key), None)
            if match is None:  # a missing key: the error belongs to the mapping that lacks it
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
    return node.start_mark.line + 1


def _validation_error(exc: ValidationError, root: yaml.Node, path: str) -> ConfigError:
    err = exc.errors()[0]
    loc = err["loc"]
    where = _dotted(loc)
    if err["type"] == "extra_forbidden":
        key = loc[-1]
        parent = _dotted(loc[:-1]) or "the topic"
        msg = (
            f"unknown key '{key}' in {parent}; allowed keys: {_allowed_keys(loc[:-1])} (see seeds/TOPICS.md)"
        )
    elif err["type"] == "missing":
        msg = f"missing required key '{where}'; add it (see seeds/TOPICS.md)"
    else:
        detail = str(err["msg"]).removeprefix("Value error, ")
        msg = f"{where}: {detail}" if loc else detail
    return ConfigError(msg, path=path, line=_line_of(root, loc))


def _dotted(loc: Sequence[Any]) -> str:
    """('rules', 0, 'zone') -> 'rules[0].zone'"""
    out = ""
    for k in loc:
        out += f"[{k}]" if isinstance(k, int) else f".{k}" if out else str(k)
    return out


def _node_at(root: yaml.Node, loc: Sequence[Any]) -> yaml.Node | None:
    node: yaml.Node | None = root
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == key), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return None
    return node


def _compile_query(query: str, root: yaml.Node, loc: tuple, label: str, path: str) -> Node:
    # One line, single spaces: a long query folded over several YAML lines reads (and points its
    # error caret) the same as a short one.
    try:
        return parse_query(query)
    except QueryError as e:
        qnode = _node_at(root, loc)
        line = qnode.start_mark.line + 1 if qnode is not None else None
        caret = " " * e.position + "^"
        raise ConfigError(
            f"{label}: bad query: {e.message}\n    {query}\n    {caret}",
            path=path,
            line=line,
        ) from None


def _compile_rule(spec: _RuleSpec, root: yaml.Node, index: int, path: str) -> Rule:
    query = " ".join(spec.query.split())
    node = _compile_query(query, root, ("rules", index, "query"), f"rule '{spec.name}'", path)
    return Rule(spec.name, query, node, spec.zone, spec.weight)


def _load_model(topic: Topic, root: yaml.Node) -> Topic:
    """Attach `<id>.model.json` from beside the topic file, if there is one."""
    file = Path(topic.source).with_name(f"{topic.id}.model.json")
    if not file.exists():
        return topic
    try:
        model = load_model(file, topic.feature_names)
    except StaleModel as e:
        log.warning("topic_model_stale", extra={"topic": topic.id, "detail": str(e)})
        return dataclasses.replace(topic, model=None, model_stale=True)
    return dataclasses.replace(topic, model=model, model_stale=model.fingerprint != topic.fingerprint)


def _load_exemplar(spec: _ExemplarSpec, n: int, topic_file: Path, root: yaml.Node) -> Exemplar:
    if spec.text is not None:
        return Exemplar(spec.id or f"inline-{n + 1}", _exemplar_vector(spec.text))
    assert spec.path is not None  # _ExemplarSpec guarantees one of path/text
    file = (topic_file.parent / spec.path).resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as e:
        pnode = _node_at(root, ("exemplars", n, "path"))
        raise ConfigError(
            f"exemplar '{spec.path}' cannot be read ({e.strerror or e}); paths are relative to the topic file "
            f"(resolved to {file})",
            path=str(topic_file),
            line=pnode.start_mark.line + 1 if pnode is not None else None,
        ) from None
    return Exemplar(spec.id or file.name, _exemplar_vector(text))


def _example(item: _ExampleSpec) -> Example:
    return Example(item.text, item.title)


def load_topic(path: str | Path) -> Topic:
    """Load and compile one topic file; `ConfigError` names the file, line and fix on any problem."""
    path = Path(path)
    where = str(path)
    try:
        source = path.read_text(encoding="utf-8")
        root = yaml.compose(source)
        data = yaml.safe_load(source)
    except OSError as e:
        raise ConfigError(f"cannot read topic file: {e.strerror or e}", path=where) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        context, context_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
        opened = f"{context} (line {context_mark.line + 1}): " if context and context_mark else ""
        raise ConfigError(
            f"not valid YAML: {opened}{getattr(e, 'problem', None) or e}; check indentation and quoting "
            "(queries with quotes are easiest inside single quotes)",
            path=where,
            line=mark.line + 1 if mark else None,
        ) from None
    if not isinstance(data, dict) or root is None:
        raise ConfigError("a topic file must be a mapping with id, description and rules", path=where, line=1)
    try:
        spec = _TopicSpec.model_validate(data)
    except ValidationError as e:
        raise _validation_error(e, root, where) from None
    if spec.id != path.stem:
        raise ConfigError(
            f"id '{spec.id}' does not match the file name '{path.name}'; rename the file or change the id",
            path=where,
            line=_line_of(root, ("id",)),
        )
    _check_unique([r.name for r in spec.rules], "rule name", root, "rules", "name", where)
    rules = tuple(_compile_rule(r, root, i, where) for i, r in enumerate(spec.rules))
    unknown = [r for r in spec.require if r not in {x.name for x in rules}]
    if unknown:
        raise ConfigError(
            f"require names '{unknown[0]}', which is not a rule of this topic; use one of: "
            + ", ".join(r.name for r in rules),
            path=where,
            line=_line_of(root, ("require",)),
        )
    vocabulary = None
    if spec.vocabulary is not None:
        query = " ".join(spec.vocabulary.split())
        vocabulary = Rule("vocabulary", query, _compile_query(query, root, ("vocabulary",), "vocabulary", where))
    exemplars = tuple(_load_exemplar(x, i, path, root) for i, x in enumerate(spec.exemplars))
    _check_unique([x.id for x in exemplars], "exemplar id", root, "exemplars", "path", where)
    topic = Topic(
        id=spec.id,
        description=spec.description.strip(),
        rules=rules,
        exemplars=exemplars,
        alert_threshold=spec.alert_threshold,
        mention_threshold=spec.mention_threshold,
        alert_on_mentions=spec.alert_on_mentions,
        exemplar_weight=spec.exemplar_weight,
        must_match=tuple(_example(x) for x in spec.examples.must_match),
        must_not_match=tuple(_example(x) for x in spec.examples.must_not_match),
        training=tuple(
            (label, _example(x))
            for label in ("about", "mentions", "no")
            for x in getattr(spec.examples, f"train_{label}")
        ),
        source=where,
        vocabulary=vocabulary,
        require=tuple(spec.require),
    )
    return _load_model(topic, root)


def _check_unique(values: list[str], what: str, root: yaml.Node, section: str, key: str, path: str) -> None:
    seen: set[str] = set()
    for i, v in enumerate(values):
        if v in seen:
            node = _node_at(root, (section, i, key)) or _node_at(root, (section, i))
            raise ConfigError(
                f"duplicate {what} '{v}'; give each one a distinct name",
                path=path,
                line=node.start_mark.line + 1 if node is not None else None,
            )
        seen.add(v)


def load_topics(directory: str | Path) -> list[Topic]:
    """All topics of a directory (every ``*.yaml``, sorted by file name)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(
            "topic directory not found; set topics_dir to a folder of *.yaml topic files", path=str(directory)
        )
    files = sorted(directory.glob("*.yaml"))
    stray = sorted(directory.glob("*.yml"))
    if stray:  # would otherwise be skipped without a word, and the topic silently never match
        raise ConfigError("topic files must end in .yaml; rename it", path=str(stray[0]))
    if not files:
        raise ConfigError(
            "no *.yaml topic files here; add one (format: seeds/TOPICS.md)", path=str(directory)
        )
    topics = [load_topic(f) for f in files]
    ids = Counter(t.id for t in topics)
    dupes = [i for i, n in ids.items() if n > 1]
    if dupes:
        raise ConfigError(f"topic id '{dupes[0]}' is defined twice; ids must be unique", path=str(directory))
    return topics


