"""Extract, from the google provider's Go source, the schema of the resources infra/terraform uses.

    python3 infra/terraform/schema/extract.py GIT_DIR TAG > infra/terraform/schema/google.json

GIT_DIR is a clone of hashicorp/terraform-provider-google (the `fetch` tool's mirror here); TAG the
version infra/terraform/versions.tf pins (its lower bound, v7.21.0). Terraform cannot download
providers on this machine, so tests/test_terraform_schema.py checks every resource, attribute and
block name of infra/terraform against this extract, offline. Names only, with each attribute's
required/optional/computed flags: no provider code is copied.

The parser reads the sdkv2 schema literals (map[string]*schema.Schema{...}) that both the generated
(MMv1) and the hand-written resources use, following Elem: &schema.Resource{...}, helper functions
that return a *schema.Schema or *schema.Resource, and the IAM member wrapper.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache

RESOURCES = (
    "google_artifact_registry_repository",
    "google_cloud_run_service_iam_member",
    "google_cloud_run_v2_service",
    "google_cloud_scheduler_job",
    "google_cloudfunctions2_function",
    "google_firestore_database",
    "google_firestore_field",
    "google_firestore_index",
    "google_logging_metric",
    "google_monitoring_alert_policy",
    "google_monitoring_dashboard",
    "google_monitoring_notification_channel",
    "google_project_iam_member",
    "google_project_service",
    "google_redis_instance",
    "google_secret_manager_secret",
    "google_secret_manager_secret_iam_member",
    "google_secret_manager_secret_version",
    "google_service_account",
    "google_storage_bucket",
    "google_storage_bucket_object",
)


class Source:
    def __init__(self, git_dir: str, rev: str) -> None:
        self.git_dir = git_dir
        self.rev = rev

    def git(self, *args: str) -> str:
        command = ["git", f"--git-dir={self.git_dir}", *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603

    @cache  # noqa: B019 - one Source per run
    def read(self, path: str) -> str:
        return self.git("show", f"{self.rev}:{path}")

    @cache  # noqa: B019
    def files(self, prefix: str) -> list[str]:
        return [
            f
            for f in self.git("ls-tree", "-r", "--name-only", self.rev, prefix).splitlines()
            if f.endswith(".go") and not f.endswith("_test.go")
        ]

    def grep(self, pattern: str, prefix: str) -> list[str]:
        command = ["git", f"--git-dir={self.git_dir}", "grep", "-l", "-E", pattern, self.rev, "--", prefix]
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        return [line.split(":", 1)[1] for line in result.stdout.splitlines() if not line.endswith("_test.go")]


def skip(text: str, i: int) -> int:
    """Past a string or comment starting at i (else i)."""
    c = text[i]
    if c == "`":
        return text.index("`", i + 1) + 1
    if c == '"':
        j = i + 1
        while text[j] != '"':
            j += 2 if text[j] == "\\" else 1
        return j + 1
    if c == "'":
        j = i + 1
        while text[j] != "'":
            j += 2 if text[j] == "\\" else 1
        return j + 1
    if text.startswith("//", i):
        return text.index("\n", i)
    if text.startswith("/*", i):
        return text.index("*/", i) + 2
    return i


def close(text: str, i: int) -> int:
    """The index of the bracket closing the one at i."""
    pairs = {"{": "}", "(": ")", "[": "]"}
    stack = [pairs[text[i]]]
    j = i + 1
    while stack:
        k = skip(text, j)
        if k != j:
            j = k
            continue
        c = text[j]
        if c in pairs:
            stack.append(pairs[c])
        elif c in ")}]":
            assert c == stack.pop(), (text[i : i + 80], j)
        j += 1
    return j - 1


def top_level_entries(body: str) -> list[tuple[str, str]]:
    """key: value pairs at depth 0 of a composite literal's body."""
    entries: list[tuple[str, str]] = []
    i, start = 0, 0
    while i < len(body):
        k = skip(body, i)
        if k != i:
            i = k
            continue
        c = body[i]
        if c in "{([":
            i = close(body, i) + 1
            continue
        if c == ",":
            entries.append(_split(body[start:i]))
            start = i + 1
        i += 1
    if body[start:].strip():
        entries.append(_split(body[start:]))
    return [e for e in entries if e[0]]


def _split(entry: str) -> tuple[str, str]:
    entry = re.sub(r"^\s*(//[^\n]*\n\s*)*", "", entry).strip()
    i = 0
    while i < len(entry):
        k = skip(entry, i)
        if k != i:
            i = k
            continue
        if entry[i] in "{([":
            i = close(entry, i) + 1
            continue
        if entry[i] == ":":
            return entry[:i].strip(), entry[i + 1 :].strip()
        i += 1
    return "", entry


def literal_body(value: str, prefix: str) -> str | None:
    """The body of `prefix{...}` when value is that literal."""
    value = value.strip()
    if not value.startswith(prefix):
        return None
    i = value.index("{", len(prefix) - 1)
    return value[i + 1 : close(value, i)]


class Extractor:
    def __init__(self, source: Source) -> None:
        self.src = source

    def func_body(self, package_dir: str, name: str) -> tuple[str, str]:
        """(body, file) of `func name(...) ...{` in a package directory."""
        for path in self.src.grep(rf"^func {name}\(", package_dir):
            text = self.src.read(path)
            match = re.search(rf"^func {name}\([^)]*\)[^{{]*{{", text, re.M)
            if match:
                start = match.end() - 1
                return text[start + 1 : close(text, start)], path
        raise LookupError(f"func {name} in {package_dir}")

    def var_body(self, package_dir: str, name: str) -> str:
        for path in self.src.grep(rf"^var {name} = ", package_dir):
            text = self.src.read(path)
            match = re.search(rf"^var {name} = map\[string\]\*schema\.Schema{{", text, re.M)
            if match:
                start = match.end() - 1
                return text[start + 1 : close(text, start)]
        raise LookupError(f"var {name} in {package_dir}")

    def resolve_call(self, expr: str, package_dir: str) -> tuple[str, str]:
        """The returned literal of a helper call such as foo() or pkg.Foo()."""
        match = re.fullmatch(r"(?:(\w+)\.)?(\w+)\(\)", expr.strip())
        assert match, expr
        pkg, name = match.groups()
        directory = self.package_dir(pkg) if pkg else package_dir
        body, path = self.func_body(directory, name)
        ret = re.search(r"return\s+(&schema\.(?:Schema|Resource)\{)", body)
        assert ret, f"{name}: no literal returned"
        start = body.index("{", ret.start(1))
        return body[ret.start(1) : close(body, start) + 1], path.rsplit("/", 1)[0]

    def package_dir(self, pkg: str) -> str:
        known = {"tpgresource": "google/tpgresource", "tpgiamresource": "google/tpgiamresource"}
        if pkg in known:
            return known[pkg]
        return f"google/services/{pkg}"

    def schema_map(self, body: str, package_dir: str) -> dict[str, dict[str, object]]:
        fields: dict[str, dict[str, object]] = {}
        for key, value in top_level_entries(body):
            name = key.strip('"')
            if value.startswith("{"):
                literal = value[1 : close(value, 0)]
            elif value.startswith("&schema.Schema{"):
                literal = literal_body(value, "&schema.Schema{") or ""
            else:
                resolved, directory = self.resolve_call(value, package_dir)
                literal = literal_body(resolved, "&schema.Schema{") or ""
                package_dir = directory
            fields[name] = self.field(literal, package_dir)
        return fields

    def field(self, literal: str, package_dir: str) -> dict[str, object]:
        entries = dict(top_level_entries(literal))
        out: dict[str, object] = {
            flag.lower(): True for flag in ("Required", "Optional", "Computed") if entries.get(flag) == "true"
        }
        out["type"] = entries.get("Type", "").replace("schema.Type", "").lower()
        elem = entries.get("Elem")
        if elem:
            resource = literal_body(elem, "&schema.Resource{")
            if resource is None and re.fullmatch(r"(\w+\.)?\w+\(\)", elem):
                resolved, package_dir = self.resolve_call(elem, package_dir)
                resource = literal_body(resolved, "&schema.Resource{")
            if resource is not None:
                out["block"] = self.resource(resource, package_dir)
        return out

    def resource(self, literal: str, package_dir: str) -> dict[str, dict[str, object]]:
        entries = dict(top_level_entries(literal))
        value = entries["Schema"]
        body = literal_body(value, "map[string]*schema.Schema{")
        if body is None:
            raise LookupError(f"Schema: {value[:80]}")
        return self.schema_map(body, package_dir)

    def registered(self, name: str) -> dict[str, dict[str, object]]:
        # Generated resources register themselves: registry.Schema{Name: "...", Schema: X()}.
        for path in self.src.grep(rf'Name: +"{name}",', "google/services"):
            text = self.src.read(path)
            block = text[text.index(f'"{name}",') :]
            expr = re.search(r"Schema:\s+(.+),\n", block)
            assert expr, name
            return self.from_expression(expr.group(1), path.rsplit("/", 1)[0])
        # Hand-written ones are listed in the provider's map.
        for path in self.src.grep(rf'"{name}": ', "google/provider"):
            text = self.src.read(path)
            for match in re.finditer(rf'"{name}":\s+(.+),\n', text):
                expr = match.group(1)
                if "DataSource" in expr:
                    continue
                return self.from_expression(expr, None)
        raise LookupError(name)

    def from_expression(self, expr: str, package_dir: str | None) -> dict[str, dict[str, object]]:
        iam = re.match(r"tpgiamresource\.ResourceIamMember\((?:(\w+)\.)?(\w+),", expr)
        if iam:
            pkg, var = iam.groups()
            directory = self.package_dir(pkg) if pkg else package_dir
            assert directory
            fields = self.schema_map(self.var_body(directory, var), directory)
            base = self.var_body("google/tpgiamresource", "IamMemberBaseSchema")
            fields.update(self.schema_map(base, "google/tpgiamresource"))
            return fields
        call = re.fullmatch(r"(?:(\w+)\.)?(\w+)\(\)", expr.strip())
        assert call, expr
        pkg, func = call.groups()
        directory = self.package_dir(pkg) if pkg else package_dir
        assert directory
        body, path = self.func_body(directory, func)
        ret = re.search(r"return\s+&schema\.Resource\{", body)
        assert ret, func
        start = body.index("{", ret.start())
        return self.resource(body[start + 1 : close(body, start)], path.rsplit("/", 1)[0])


def main(argv: list[str]) -> int:
    git_dir, tag = argv
    source = Source(git_dir, tag)
    commit = source.git("rev-parse", f"{tag}^{{commit}}").strip()
    extractor = Extractor(Source(git_dir, commit))
    out = {
        "provider": "registry.terraform.io/hashicorp/google",
        "version": tag.lstrip("v"),
        "commit": commit,
        "source": "https://github.com/hashicorp/terraform-provider-google",
        "resources": {name: extractor.registered(name) for name in RESOURCES},
    }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
