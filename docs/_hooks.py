"""MkDocs hooks: the command-line and HTTP references are generated from the code at build time.

``<!-- generated: cli -->`` in a page becomes the reference of every ``personae`` command,
read from the real argument parsers; ``<!-- generated: http -->`` becomes the reference of the
service's routes, read from the OpenAPI schema the service itself serves (also written beside
the page as ``openapi.json``). Neither can drift from the code: there is nothing to keep in step.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

_OPENAPI: dict[str, Any] | None = None


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if "<!-- generated: cli -->" in markdown:
        markdown = markdown.replace("<!-- generated: cli -->", cli_reference())
    if "<!-- generated: http -->" in markdown:
        markdown = markdown.replace("<!-- generated: http -->", http_reference())
    return markdown


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    files.append(File.generated(config, "reference/openapi.json", content=json.dumps(openapi(), indent=1)))
    return files


# -- the command line -------------------------------------------------------------------------

def _escape(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps its subcommands here and nowhere public
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command(name: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = [f"{'#' * level} `{name}`", ""]
    if parser.description:
        lines += [_escape(parser.description), ""]
    usage = parser.format_usage().replace("usage: ", "", 1).strip()
    lines += ["```text", usage, "```", ""]
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        flags = ", ".join(f"`{flag}`" for flag in action.option_strings) or f"`{action.metavar or action.dest}`"
        if action.choices and not isinstance(action, argparse._SubParsersAction):
            flags += " {" + ", ".join(str(c) for c in action.choices) + "}"
        rows.append(f"| {flags} | {_escape(action.help or '')} |")
    if rows:
        lines += ["| option | what it does |", "|---|---|", *rows, ""]
    for sub_name, sub in _subparsers(parser).items():
        lines += _command(f"{name} {sub_name}", sub, min(level + 1, 4))
    return lines


def cli_reference() -> str:
    from personae.cli.main import build_parser

    parser = build_parser()
    lines: list[str] = []
    for name, sub in _subparsers(parser).items():
        lines += _command(f"personae {name}", sub, 2)
    return "\n".join(lines)


# -- the HTTP API -----------------------------------------------------------------------------

def _schema_name(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items', {}))}"
    if "anyOf" in schema:
        return " or ".join(_schema_name(s) for s in schema["anyOf"])
    return str(schema.get("type", "object"))


def openapi() -> dict[str, Any]:
    """The schema ``personae serve-api`` serves, from an app over a throwaway store."""
    global _OPENAPI
    if _OPENAPI is None:
        from personae.service import openapi_schema

        _OPENAPI = openapi_schema()
    return _OPENAPI


def http_reference() -> str:
    schema = openapi()
    lines = [f"Generated from the service's own OpenAPI schema (version {schema['info']['version']}); the "
             "whole schema is [openapi.json](openapi.json), and a running service serves it at "
             "`/openapi.json`.", ""]
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            lines += [f"## `{method.upper()} {path}`", ""]
            if op.get("summary"):
                lines += [f"**{_escape(op['summary'])}**", ""]
            if op.get("description"):
                lines += [op["description"].strip(), ""]
            scopes = [scope for need in op.get("security", []) for names in need.values() for scope in names]
            if scopes:
                lines += [f"Scope: `{'`, `'.join(scopes)}`" + (" (only with `--private-ops`)" if scopes == ["ops"]
                                                               else ""), ""]
            params = op.get("parameters", [])
            if params:
                lines += ["| parameter | in | type | required | description |", "|---|---|---|---|---|"]
                lines += [f"| `{p['name']}` | {p['in']} | {_schema_name(p.get('schema', {}))} | "
                          f"{'yes' if p.get('required') else 'no'} | {_escape(p.get('description', ''))} |"
                          for p in params]
                lines.append("")
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                lines += [f"Body: `{_schema_name(body.get('schema', {}))}`", ""]
            responses = op.get("responses", {})
            if responses:
                lines += ["| status | answer |", "|---|---|"]
                for status, answer in responses.items():
                    content = answer.get("content", {}).get("application/json", {})
                    shape = f" (`{_schema_name(content['schema'])}`)" if content.get("schema") else ""
                    lines.append(f"| {status} | {_escape(answer.get('description', ''))}{shape} |")
                lines.append("")
    components = schema.get("components", {}).get("schemas", {})
    if components:
        lines += ["## Schemas", ""]
        for name, component in components.items():
            lines += [f"### `{name}`", ""]
            if component.get("description"):
                lines += [_escape(component["description"]), ""]
            props = component.get("properties", {})
            required = set(component.get("required", []))
            if props:
                lines += ["| field | type | required | description |", "|---|---|---|---|"]
                lines += [f"| `{field}` | {_escape(_schema_name(spec))} | {'yes' if field in required else 'no'} | "
                          f"{_escape(spec.get('description', ''))} |" for field, spec in props.items()]
                lines.append("")
    return "\n".join(lines)
