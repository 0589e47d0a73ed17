"""The layer keeps botocore's API models only for the services sipreg calls (layers/common/Makefile):
every service the package's code reaches must be on that list, or Lambda would fail at the call.
Likewise for what the layer prunes of powertools: nothing sipreg imports may be on that list; and for
the parts of other packages it prunes (UNIMPORTED): neither sipreg nor any package in the layer may
import them, but for the few imports that run only when a program asks for the pruned part itself."""

from __future__ import annotations

import re
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "common" / "sipreg"


def makefile_list(name: str) -> set[str]:
    makefile = (ROOT / "layers" / "common" / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(rf"^{name} := (.+)$", makefile, re.MULTILINE)
    assert match, f"{name} missing from layers/common/Makefile"
    return set(match.group(1).split())


def kept_services() -> set[str]:
    return makefile_list("AWS_SERVICES")


def sources() -> list[Path]:
    """The layer's own code and every function's."""
    paths = [p for p in PACKAGE.rglob("*.py") if "proto" not in p.parts]
    return paths + sorted((ROOT / "functions").rglob("*.py"))


def services_the_code_calls() -> set[str]:
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if "proto" in path.parts:
            continue
        text = path.read_text()
        found |= set(re.findall(r"""(?:aws_client|\bclient|\.resource)\(\s*["']([a-z0-9-]+)["']""", text))
        if "dynamodb_table(" in text:
            found.add("dynamodb")
        if "Tracer(" in text:  # aws_xray_sdk builds an xray client (sampling rules) when it loads
            found.add("xray")
    return found


def test_every_service_the_code_calls_keeps_its_api_model_in_the_layer() -> None:
    called = services_the_code_calls()
    assert {"dynamodb", "sqs", "kms", "secretsmanager", "events", "xray"} <= called  # the scan sees them
    assert called <= kept_services()


def test_a_traced_layer_keeps_the_xray_model_its_sampler_builds_a_client_for() -> None:
    traced = any("Tracer(" in path.read_text() for path in sources())
    connector = distribution("aws-xray-sdk").locate_file("aws_xray_sdk/core/sampling/connector.py")
    assert "create_client('xray'" in Path(str(connector)).read_text()  # the SDK still needs the model
    assert traced  # sipreg.observability builds one
    assert "xray" in kept_services()


def test_no_powertools_utility_the_layer_prunes_is_imported() -> None:
    imported: set[str] = set()
    for path in sources():
        text = path.read_text()
        imported |= set(re.findall(r"aws_lambda_powertools\.utilities\.([a-z_]+)", text))
        imported |= {
            name.strip()
            for names in re.findall(r"from aws_lambda_powertools\.utilities import ([a-z_, ]+)", text)
            for name in names.split(",")
        }
    assert {"typing", "parameters"} <= imported  # the scan sees what the functions use
    assert not imported & makefile_list("POWERTOOLS_UNUSED")


# --- what the layer prunes of packages' own code (UNIMPORTED) ----------------------------------------

# The distributions whose parts the layer prunes, and the one import of a pruned part in each that is
# allowed: each runs only when a program asks for the pruned part itself.
PRUNED_FROM = ("pydantic", "authlib", "grpcio", "cffi")
ALLOWED_IMPORTS = {
    # Only for a type with pydantic 1's `__get_validators__`, to tell a v1 model from a v2 one.
    ("pydantic/_internal/_generate_schema.py", "pydantic.v1"),
    # Only when the program has imported authlib.jose itself (`if "authlib.jose" in sys.modules`).
    ("authlib/_joserfc_helpers.py", "authlib.jose"),
    # Only in a requests-based assertion flow (sipreg sends over urllib3; requests is not in the layer).
    ("authlib/oauth2/rfc7523/auth.py", "authlib.integrations"),
    # Only in a docstring's example (`metadata.validate`).
    ("authlib/oauth2/rfc8414/models.py", "authlib.oidc"),
}
_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+([\w, \t]+)|import[ \t]+([\w.]+))", re.MULTILINE
)


def unimported() -> list[str]:
    """UNIMPORTED's paths as module names (`authlib.integrations.django_` for `django_*`)."""
    return [path.replace("/", ".").rstrip("*") for path in makefile_list("UNIMPORTED")]


def pruned_part(module: str) -> str | None:
    """The UNIMPORTED part a module is in (as a module name), if any."""
    for name in unimported():
        if module == name or module.startswith(name if name.endswith("_") else name + "."):
            return ".".join(module.split(".")[: name.count(".") + 1])
    return None


def imported_modules(path: Path, module: str) -> set[str]:
    """What a source file imports, relative imports resolved, `from a import b` as a and a.b."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for written, names, plain in _IMPORT.findall(path.read_text(encoding="utf-8")):
        if plain:
            found.add(plain)
            continue
        source, dots = written.lstrip("."), len(written) - len(written.lstrip("."))
        if dots:
            base = package.split(".")[: len(package.split(".")) - dots + 1]
            source = ".".join([*base, source] if source else base)
        found.add(source)
        found |= {f"{source}.{name.split()[0]}" for name in names.split(",") if name.strip()}
    return found


def third_party_sources() -> list[tuple[Path, str]]:
    """Every installed source file of the layer's distributions, as (path, module name)."""
    constraints = (ROOT / "layers" / "common" / "constraints.txt").read_text()
    names = re.findall(r"^([A-Za-z0-9_.-]+)==", constraints, re.M)
    files: list[tuple[Path, str]] = []
    for name in names:
        dist = distribution(name)
        for file in dist.files or ():
            if file.suffix == ".py" and not str(file).startswith(".."):
                module = ".".join(file.with_suffix("").parts).removesuffix(".__init__")
                files.append((Path(str(dist.locate_file(file))), module))
    return files


def test_the_layer_prunes_parts_that_exist() -> None:
    for path in makefile_list("UNIMPORTED"):
        parent, _, pattern = path.rpartition("/")
        dist_root = Path(str(distribution("pydantic").locate_file(""))) / parent
        assert list(dist_root.glob(pattern)), f"{path} is in no installed package: drop it from UNIMPORTED"


def test_no_function_imports_a_part_the_layer_prunes() -> None:
    for path in sources():
        inside = path.is_relative_to(PACKAGE)
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts) if inside else "app"
        pruned = {part for name in imported_modules(path, module) if (part := pruned_part(name))}
        assert not pruned, f"{path.relative_to(ROOT)} imports {sorted(pruned)}, which the layer prunes"


def test_no_package_in_the_layer_imports_what_it_prunes_but_on_request() -> None:
    files = third_party_sources()
    assert any(module == "pydantic.main" for _, module in files)  # the scan sees the packages
    found = {
        (str(Path(*path.parts[-len(module.split(".")) - (path.name == "__init__.py") :])), part)
        for path, module in files
        if not pruned_part(module)
        for name in imported_modules(path, module)
        if (part := pruned_part(name))
    }
    assert found <= ALLOWED_IMPORTS, sorted(found - ALLOWED_IMPORTS)


def layer_distributions() -> set[str]:
    constraints = (ROOT / "layers" / "common" / "constraints.txt").read_text()
    return {name.lower().replace("_", "-") for name in re.findall(r"^([A-Za-z0-9_.-]+)==", constraints, re.M)}


def test_every_library_the_code_imports_is_in_the_layer() -> None:
    """A library that the dev venv has (for the tests, devstack) but the layer does not would fail
    only on Lambda, at the first import."""
    owners = packages_distributions()
    in_layer = layer_distributions()
    missing: dict[str, str] = {}
    for path in sources():
        inside = path.is_relative_to(PACKAGE)
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts) if inside else "app"
        for name in imported_modules(path, module):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in {"sipreg", "app", "__future__"} or not top:
                continue
            dists = {d.lower().replace("_", "-") for d in owners.get(top, [top])}
            if not dists & in_layer:
                missing[top] = str(path.relative_to(ROOT))
    assert {"boto3", "urllib3", "certifi", "grpc", "pydantic"} <= {
        n.split(".")[0] for p in sources() for n in imported_modules(p, "x")
    }  # the scan sees the code's libraries
    assert not missing, f"imported but not in the layer: {missing}"
