"""Offline checks of ``terraform/`` (issue 8): no provider can be downloaded here, so the configuration is
parsed with python-hcl2 and its wiring asserted, ``terraform fmt -check`` runs where terraform is
installed, and checkov (its own venv, ``tests/tools/checkov.sh``) must report zero failed checks.

What "least privilege" means here: no IAM statement grants a wildcard action, no statement outside the
KMS key policy uses ``Resource "*"``, and the S3 Vectors / Lambda / Bedrock statements name exactly the
actions each role needs on exactly the declared indexes, function and models.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest
from hcl2 import SerializationOptions

from tests.support.paths import REPO

TERRAFORM = REPO / "terraform"
MODULE = TERRAFORM / "modules" / "s3vl"
EXAMPLE = TERRAFORM / "examples" / "complete"
CHECKOV = REPO / "tests" / "tools" / "checkov.sh"

_OPTIONS = SerializationOptions(with_comments=False, explicit_blocks=False, strip_string_quotes=True)

# Services whose statements must never use a wildcard action or resource.
STRICT_SERVICES = ("s3vectors", "lambda", "bedrock")

LAMBDA_S3VECTORS_ACTIONS = {
    "s3vectors:QueryVectors",
    "s3vectors:GetVectors",
    "s3vectors:ListVectors",
    "s3vectors:GetIndex",
}
WORKER_S3VECTORS_ACTIONS = LAMBDA_S3VECTORS_ACTIONS | {"s3vectors:PutVectors", "s3vectors:DeleteVectors"}

# The only AWS managed policies the module may attach, and why (see the comments in the .tf files).
ALLOWED_MANAGED_POLICIES = {
    "service-role/AWSLambdaVPCAccessExecutionRole",  # ENIs of a function in a VPC
    "AWSXRayDaemonWriteAccess",  # X-Ray traces of the Lambda (actions without resource-level scoping)
    "service-role/AmazonECSTaskExecutionRolePolicy",  # pull the image, write the awslogs stream
}


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


@dataclass
class Config:
    """The blocks of one Terraform folder, merged across its .tf files."""

    folder: Path
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    terraform: list[dict[str, Any]] = field(default_factory=list)
    text: str = ""

    def resource(self, rtype: str, name: str) -> dict[str, Any]:
        assert name in self.resources.get(rtype, {}), f"{self.folder.name}: missing resource {rtype}.{name}"
        return self.resources[rtype][name]

    def policy_document(self, name: str) -> dict[str, Any]:
        docs = self.data.get("aws_iam_policy_document", {})
        assert name in docs, f"missing data.aws_iam_policy_document.{name}"
        return docs[name]


@cache
def load_folder(folder: Path) -> Config:
    cfg = Config(folder)
    for path in sorted(folder.glob("*.tf")):
        text = path.read_text()
        cfg.text += text
        with path.open() as f:
            parsed = hcl2.load(f, serialization_options=_OPTIONS)
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                cfg.resources.setdefault(rtype, {}).update(named)
        for block in parsed.get("data", []):
            for dtype, named in block.items():
                cfg.data.setdefault(dtype, {}).update(named)
        for block in parsed.get("variable", []):
            cfg.variables.update(block)
        for block in parsed.get("output", []):
            cfg.outputs.update(block)
        for block in parsed.get("locals", []):
            cfg.locals.update(block)
        for block in parsed.get("module", []):
            cfg.modules.update(block)
        cfg.terraform.extend(parsed.get("terraform", []))
    return cfg


def module() -> Config:
    return load_folder(MODULE)


def example() -> Config:
    return load_folder(EXAMPLE)


def as_list(value: Any) -> list[Any]:
    """An HCL value that may be a list or a single expression string."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def one(value: Any) -> dict[str, Any]:
    """The single nested block (python-hcl2 gives nested blocks as one-element lists)."""
    blocks = as_list(value)
    assert len(blocks) == 1, f"expected one block, got {blocks!r}"
    block = blocks[0]
    assert isinstance(block, dict)
    return block


def statements(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of a policy document, including those generated by dynamic blocks."""
    yield from as_list(doc.get("statement"))
    for dyn in as_list(doc.get("dynamic")):
        if "statement" in dyn:
            yield from as_list(dyn["statement"].get("content"))


def key_policy_documents(cfg: Config) -> set[str]:
    """Names of the policy documents used as KMS key policies (where Resource "*" means "this key")."""
    names = set()
    for key in cfg.resources.get("aws_kms_key", {}).values():
        m = re.fullmatch(r"\$\{data\.aws_iam_policy_document\.(\w+)\.json\}", key.get("policy", ""))
        if m:
            names.add(m.group(1))
    return names


def iam_violations(doc_name: str, statement: dict[str, Any], *, key_policy: bool = False) -> list[str]:
    """Least-privilege problems of one aws_iam_policy_document statement."""
    where = f"{doc_name}/{statement.get('sid', '?')}"
    problems = []
    for negated in ("not_actions", "not_resources", "not_principals"):
        if negated in statement:
            problems.append(f"{where}: {negated} grants everything else")
    actions = [str(a) for a in as_list(statement.get("actions"))]
    resources = [str(r) for r in as_list(statement.get("resources"))]
    if not actions:
        problems.append(f"{where}: no actions")
    # A trust policy names principals instead of resources; any other statement must name resources.
    if not resources and not key_policy and "principals" not in statement:
        problems.append(f"{where}: no resources")
    strict = [a for a in actions if a == "*" or a.split(":", 1)[0] in STRICT_SERVICES]
    for action in actions:
        if "*" in action and (not key_policy or action in strict):
            problems.append(f"{where}: wildcard action {action}")
    if "*" in resources and not key_policy:
        problems.append(f'{where}: Resource "*"')
    if strict:
        problems.extend(f"{where}: wildcard resource {r} for {strict}" for r in resources if "*" in r)
    return problems


def all_statements(cfg: Config) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, doc in cfg.data.get("aws_iam_policy_document", {}).items():
        for st in statements(doc):
            yield name, st


def actions_of(cfg: Config, doc: str, service: str) -> set[str]:
    return {
        a
        for st in statements(cfg.policy_document(doc))
        for a in as_list(st.get("actions"))
        if a.startswith(f"{service}:")
    }


# ---------------------------------------------------------------------------------------------------
# IAM: least privilege
# ---------------------------------------------------------------------------------------------------


def test_iam_checker_flags_wildcards_and_missing_scope() -> None:
    bad = {"sid": "Bad", "actions": ["s3vectors:*"], "resources": ["*"]}
    problems = iam_violations("doc", bad)
    assert any("wildcard action s3vectors:*" in p for p in problems)
    assert any('Resource "*"' in p for p in problems)
    # A strict service stays strict even inside a key policy, and a bucket-wide pattern is a wildcard.
    assert iam_violations("k", {"actions": ["lambda:InvokeFunction"], "resources": ["*"]}, key_policy=True)
    assert iam_violations("d", {"actions": ["s3vectors:GetIndex"], "resources": ["arn:aws:s3vectors:r:1:bucket/b/*"]})
    assert iam_violations("d", {"not_actions": ["iam:*"], "resources": ["x"], "actions": ["s3:GetObject"]})
    assert iam_violations("d", {"actions": ["*"], "resources": ["arn:aws:s3:::b"]})
    # What the module does for logs (a log group's streams) is not a strict-service wildcard.
    assert not iam_violations("d", {"actions": ["logs:PutLogEvents"], "resources": ["${aws_x.arn}:*"]})
    assert not iam_violations("k", {"actions": ["kms:*"], "resources": ["*"]}, key_policy=True)


def test_every_iam_statement_is_least_privilege() -> None:
    cfg = module()
    key_docs = key_policy_documents(cfg)
    assert key_docs == {"kms"}, "the module's key policy should be data.aws_iam_policy_document.kms"
    problems = [p for name, st in all_statements(cfg) for p in iam_violations(name, st, key_policy=name in key_docs)]
    assert problems == []
    # No policy is written inline as JSON, where this test could not see it.
    assert "aws_iam_policy" not in cfg.resources
    for name, pol in cfg.resources["aws_iam_role_policy"].items():
        assert re.fullmatch(r"\$\{data\.aws_iam_policy_document\.\w+\.json\}", pol["policy"]), name
    assert '"Action"' not in cfg.text
    assert "Statement =" not in cfg.text


def test_query_lambda_role_reads_only_the_declared_indexes() -> None:
    cfg = module()
    assert actions_of(cfg, "lambda", "s3vectors") == LAMBDA_S3VECTORS_ACTIONS
    assert actions_of(cfg, "lambda", "bedrock") == {"bedrock:InvokeModel"}
    assert actions_of(cfg, "lambda", "lambda") == set()
    for st in statements(cfg.policy_document("lambda")):
        acts = as_list(st["actions"])
        if any(a.startswith("s3vectors:") for a in acts):
            assert st["resources"] == "${values(local.index_arns)}"
        if "bedrock:InvokeModel" in acts:
            assert st["resources"] == "${local.bedrock_model_arns}"


def test_worker_role_writes_only_the_declared_indexes() -> None:
    cfg = module()
    assert actions_of(cfg, "task", "s3vectors") == WORKER_S3VECTORS_ACTIONS
    assert actions_of(cfg, "task", "bedrock") == {"bedrock:InvokeModel"}
    for st in statements(cfg.policy_document("task")):
        acts = as_list(st["actions"])
        if any(a.startswith("s3vectors:") for a in acts):
            assert st["resources"] == "${values(local.index_arns)}"
        if "bedrock:InvokeModel" in acts:
            assert st["resources"] == "${local.bedrock_model_arns}"
    # Only those two roles touch S3 Vectors or Bedrock at all.
    for name in cfg.data["aws_iam_policy_document"]:
        if name not in {"lambda", "task"}:
            assert actions_of(cfg, name, "s3vectors") == set(), name
            assert actions_of(cfg, name, "bedrock") == set(), name


def test_index_and_model_arns_are_exact() -> None:
    cfg = module()
    assert cfg.locals["index_arns"] == "${{for name, index in aws_s3vectors_index.this : name => index.index_arn}}"
    models = cfg.locals["bedrock_model_arns"]
    assert "foundation-model/${model}" in models
    assert "var.embedding_model_ids" in models
    validation = " ".join(v["condition"] for v in cfg.variables["embedding_model_ids"]["validation"])
    assert '!strcontains(m, "*")' in validation


def test_aurora_role_may_only_invoke_the_query_lambda() -> None:
    cfg = module()
    sts = list(statements(cfg.policy_document("rds_lambda")))
    assert len(sts) == 1
    assert sts[0]["actions"] == ["lambda:InvokeFunction"]
    assert sts[0]["resources"] == ["${aws_lambda_function.query.arn}"]
    # lambda:* permissions appear nowhere else.
    for name in cfg.data["aws_iam_policy_document"]:
        if name != "rds_lambda":
            assert actions_of(cfg, name, "lambda") == set(), name
    trust = one(cfg.policy_document("rds_assume")["statement"])
    assert one(trust["principals"])["identifiers"] == ["rds.amazonaws.com"]
    conditions = {c["variable"]: c["values"] for c in as_list(trust["condition"])}
    assert conditions["aws:SourceArn"] == ["${data.aws_rds_cluster.aurora.arn}"]
    role = cfg.resource("aws_iam_role", "rds_lambda")
    assert role["assume_role_policy"] == "${data.aws_iam_policy_document.rds_assume.json}"


def test_role_association_for_the_lambda_feature() -> None:
    cfg = module()
    assoc = cfg.resource("aws_rds_cluster_role_association", "lambda")
    assert assoc["feature_name"] == "Lambda"
    assert assoc["db_cluster_identifier"] == "${var.aurora_cluster_identifier}"
    assert assoc["role_arn"] == "${aws_iam_role.rds_lambda[0].arn}"
    # Reusing the cluster's existing Lambda role: no new role, no second association, policy still added.
    assert assoc["count"] == "${local.create_rds_role ? 1 : 0}"
    assert cfg.locals["create_rds_role"] == "${var.existing_rds_lambda_role_name == null}"
    assert cfg.resource("aws_iam_role_policy", "rds_lambda")["role"] == "${local.rds_role_name}"


def test_trust_policies_are_scoped_to_this_account() -> None:
    cfg = module()
    for name, doc in cfg.data["aws_iam_policy_document"].items():
        for st in statements(doc):
            if "sts:AssumeRole" in as_list(st.get("actions")):
                variables = {c["variable"] for c in as_list(st.get("condition"))}
                assert variables & {"aws:SourceAccount", "aws:SourceArn"}, name


def test_only_known_managed_policies_are_attached() -> None:
    cfg = module()
    attached = set()
    for att in cfg.resources["aws_iam_role_policy_attachment"].values():
        m = re.fullmatch(r"arn:\$\{local\.partition\}:iam::aws:policy/(.+)", att["policy_arn"])
        assert m, att["policy_arn"]
        attached.add(m.group(1))
    assert attached == ALLOWED_MANAGED_POLICIES


# ---------------------------------------------------------------------------------------------------
# Variables, outputs, providers
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", [MODULE, EXAMPLE], ids=["module", "example"])
def test_every_variable_has_description_and_type(folder: Path) -> None:
    cfg = load_folder(folder)
    assert cfg.variables
    for name, var in cfg.variables.items():
        assert len(str(var.get("description", "")).strip()) >= 10, f"{name}: description"
        assert var.get("type"), f"{name}: type"
    # The database password never travels through a plain variable.
    assert not [n for n in cfg.variables if re.search("password|secret_value|database_url$", n)]


@pytest.mark.parametrize("folder", [MODULE, EXAMPLE], ids=["module", "example"])
def test_every_output_has_a_description(folder: Path) -> None:
    cfg = load_folder(folder)
    assert cfg.outputs
    for name, out in cfg.outputs.items():
        assert str(out.get("description", "")).strip(), name


def test_outputs_needed_by_the_sql_setup() -> None:
    outs = module().outputs
    for name in (
        "lambda_function_arn",
        "index_arns",
        "vector_bucket_arn",
        "rds_lambda_role_arn",
        "database_url_secret_arn",
        "sql_setup",
        "sql_setup_statements",
    ):
        assert name in outs, name
    assert outs["lambda_function_arn"]["value"] == "${aws_lambda_function.query.arn}"
    assert outs["index_arns"]["value"] == "${local.index_arns}"
    assert "sql_setup" in example().outputs


def test_sql_statements_match_the_query_interface() -> None:
    loc = module().locals
    assert loc["sql_configure"] == "SELECT s3vl.configure('${aws_lambda_function.query.arn}', '${local.region}');"
    assert "s3vl.register_index(" in loc["sql_register_indexes"]


def test_sql_setup_renders_valid_statements(tmp_path: Path) -> None:
    """Evaluate the module's own SQL templates with terraform console (no provider needed)."""
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed: the templates are evaluated where it is (CI has it)")
    text = (MODULE / "outputs.tf").read_text()
    templates = text[: text.index("\n}\n") + 3]
    assert templates.startswith("locals {")
    for real, fake in (
        ("aws_lambda_function.query.arn", "local.fake_lambda_arn"),
        ("aws_s3vectors_index.this", "local.fake_indexes"),
        ("var.indexes", "local.fake_index_vars"),
    ):
        assert real in templates
        templates = templates.replace(real, fake)
    arn = "arn:aws:s3vectors:us-west-2:123456789012:bucket/b/index/"
    (tmp_path / "main.tf").write_text(
        templates
        + """
locals {
  region          = "us-west-2"
  fake_lambda_arn = "arn:aws:lambda:us-west-2:123456789012:function:s3vl-query"
  fake_indexes = {
    "products"  = { index_arn = "@ARN@products" }
    "it's-odd"  = { index_arn = "@ARN@odd" }
  }
  fake_index_vars = {
    "products" = { description = "Products (titan v2)" }
    "it's-odd" = { description = "O'Brien's notes" }
  }
}
""".replace("@ARN@", arn)
    )
    proc = subprocess.run(
        [terraform, "console"],
        input="jsonencode(concat([local.sql_configure], local.sql_register_indexes))\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    statements_ = json.loads(json.loads(proc.stdout.strip()))
    assert statements_ == [
        "SELECT s3vl.configure('arn:aws:lambda:us-west-2:123456789012:function:s3vl-query', 'us-west-2');",
        f"SELECT s3vl.register_index('it''s-odd', '{arn}odd', 'O''Brien''s notes');",
        f"SELECT s3vl.register_index('products', '{arn}products', 'Products (titan v2)');",
    ]


_VALID_TFVARS = {
    "vpc_id": '"vpc-1"',
    "subnet_ids": '["subnet-1", "subnet-2"]',
    "aurora_cluster_identifier": '"cluster"',
    "aurora_security_group_id": '"sg-1"',
    "vector_bucket_name": '"my-vectors"',
    "container_image": '"123456789012.dkr.ecr.us-west-2.amazonaws.com/s3vl:0.1.0"',
    # Eight extra keys plus the two reserved ones (one repeated) is exactly the limit of ten.
    "indexes": '{ "products" = { dimension = 1024, non_filterable_metadata_keys = '
    '["a", "b", "c", "d", "e", "f", "g", "h", "s3vl_hash"] } }',
}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({}, None),
        ({"indexes": '{ "Bad_Name" = { dimension = 5 } }'}, "Index names must be"),
        ({"indexes": '{ "big" = { dimension = 5000 } }'}, "dimension must be an integer"),
        ({"indexes": '{ "dots" = { dimension = 5, distance_metric = "dot" } }'}, "cosine or euclidean"),
        (
            {
                "indexes": '{ "many" = { dimension = 5, non_filterable_metadata_keys = '
                '["a", "b", "c", "d", "e", "f", "g", "h", "i"] } }'
            },
            "at most 10 non-filterable",
        ),
        ({"indexes": "{}"}, "at least one index"),
        ({"embedding_model_ids": '["amazon.*"]'}, "no wildcard"),
        ({"lambda_reserved_concurrency": "0"}, "at least 1"),
        ({"lambda_runtime": '"python3.9"'}, "lambda_runtime must be"),
        ({"vector_bucket_name": '"My_Bucket"'}, "vector_bucket_name must be"),
        ({"worker_environment": '{ S3VL_DATABASE_URL = "postgresql://u:p@h/d" }'}, "never from worker_environment"),
    ],
    ids=[
        "valid",
        "index-name",
        "dimension",
        "metric",
        "too-many-keys",
        "no-index",
        "model-wildcard",
        "concurrency",
        "runtime",
        "bucket-name",
        "url-in-environment",
    ],
)
def test_variable_validations(tmp_path: Path, override: dict[str, str], message: str | None) -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed: validations are exercised where it is (CI has it)")
    shutil.copy(MODULE / "variables.tf", tmp_path / "variables.tf")
    values = {**_VALID_TFVARS, **override}
    (tmp_path / "test.tfvars").write_text("".join(f"{k} = {v}\n" for k, v in values.items()))
    proc = subprocess.run(
        [terraform, "console", "-var-file=test.tfvars"],
        input="jsonencode(keys(var.indexes))\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"},
        timeout=60,
        check=False,
    )
    # terraform console reports an invalid variable as an error but may still exit 0: read the output.
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    if message is None:
        assert proc.returncode == 0, output
        assert "Error" not in output, output
        assert json.loads(json.loads(proc.stdout.strip())) == ["products"]
    else:
        assert "Invalid value for variable" in output
        assert message in output


def test_provider_and_terraform_versions() -> None:
    for cfg in (module(), example()):
        block = cfg.terraform[0]
        providers = one(block["required_providers"])
        assert providers["aws"]["source"] == "hashicorp/aws"
        assert providers["aws"]["version"] == ">= 6.24"
        assert block["required_version"].startswith(">= 1.")


def test_example_uses_the_module() -> None:
    cfg = example()
    mod = cfg.modules["s3vl"]
    assert mod["source"] == "../../modules/s3vl"
    required = {n for n, v in module().variables.items() if "default" not in v}
    assert required <= set(mod), required - set(mod)
    assert mod["container_image"] == "${aws_ecr_repository.worker.repository_url}:${var.image_tag}"
    repo = cfg.resource("aws_ecr_repository", "worker")
    assert repo["image_tag_mutability"] == "IMMUTABLE"


# ---------------------------------------------------------------------------------------------------
# S3 Vectors, Lambda, worker, endpoints, alarms
# ---------------------------------------------------------------------------------------------------


def test_vector_bucket_and_indexes() -> None:
    cfg = module()
    bucket = cfg.resource("aws_s3vectors_vector_bucket", "this")
    assert bucket["vector_bucket_name"] == "${var.vector_bucket_name}"
    enc = one(bucket["encryption_configuration"])
    assert enc["sse_type"] == '${local.vector_bucket_sse_kms ? "aws:kms" : "AES256"}'
    assert enc["kms_key_arn"] == "${local.vector_bucket_kms_key_arn}"
    assert cfg.variables["vector_bucket_use_module_kms_key"]["default"] is False
    # With the module's key, its policy admits the S3 Vectors indexing service for this bucket only.
    dyn = one(cfg.policy_document("kms")["dynamic"])["statement"]
    assert "var.vector_bucket_use_module_kms_key" in dyn["for_each"]
    indexing = one(dyn["content"])
    assert one(indexing["principals"])["identifiers"] == ["indexing.s3vectors.amazonaws.com"]
    assert indexing["actions"] == ["kms:Decrypt"]
    conditions = {c["variable"]: c["values"] for c in indexing["condition"]}
    assert conditions["aws:SourceAccount"] == ["${local.account_id}"]
    assert conditions["aws:SourceArn"][0] == "${local.vector_bucket_arn_pattern}"
    assert cfg.locals["vector_bucket_arn_pattern"].endswith(":bucket/${var.vector_bucket_name}")
    index = cfg.resource("aws_s3vectors_index", "this")
    assert index["for_each"] == "${var.indexes}"
    assert index["data_type"] == "float32"
    assert index["dimension"] == "${each.value.dimension}"
    assert index["distance_metric"] == "${each.value.distance_metric}"
    keys = one(index["metadata_configuration"])["non_filterable_metadata_keys"]
    assert "local.reserved_non_filterable_keys" in keys
    assert cfg.locals["reserved_non_filterable_keys"] == ["s3vl_hash", "s3vl_text"]
    assert index["tags"] == bucket["tags"] == "${local.tags}"


def test_query_lambda_wiring() -> None:
    cfg = module()
    fn = cfg.resource("aws_lambda_function", "query")
    assert fn["handler"] == "handler.lambda_handler"
    assert fn["runtime"] == "${var.lambda_runtime}"
    assert cfg.variables["lambda_runtime"]["default"] in {"python3.11", "python3.12"}
    assert fn["timeout"] == "${var.lambda_timeout}"
    assert fn["memory_size"] == "${var.lambda_memory_size}"
    assert fn["reserved_concurrent_executions"] == "${var.lambda_reserved_concurrency}"
    vpc = one(fn["vpc_config"])
    assert vpc["subnet_ids"] == "${var.subnet_ids}"
    assert vpc["security_group_ids"] == ["${aws_security_group.lambda.id}"]
    sg = cfg.resource("aws_security_group", "lambda")
    assert sg["vpc_id"] == "${var.vpc_id}"
    assert one(fn["dead_letter_config"])["target_arn"] == "${aws_sqs_queue.lambda_dlq.arn}"
    assert cfg.resource("aws_sqs_queue", "lambda_dlq")["kms_master_key_id"] == "${local.kms_key_arn}"
    assert one(fn["logging_config"])["log_group"] == "${aws_cloudwatch_log_group.lambda.name}"
    group = cfg.resource("aws_cloudwatch_log_group", "lambda")
    assert group["retention_in_days"] == "${var.log_retention_days}"
    assert cfg.locals["lambda_log_group"] == "/aws/lambda/${local.lambda_function_name}"
    env = one(fn["environment"])["variables"]
    assert env.startswith("${merge(var.lambda_environment, {")
    assert "S3VL_DEFAULT_REGION = local.region" in env
    assert "S3VL_QUERY_LOG_LEVEL = var.lambda_log_level" in env


def test_lambda_package_comes_from_the_lambda_folder_without_tests() -> None:
    cfg = module()
    assert cfg.locals["lambda_source_dir"].endswith('"${path.module}/../../../lambda"}')
    assert (MODULE / "../../../lambda").resolve() == REPO / "lambda"
    archive = cfg.data["archive_file"]["lambda"]
    assert archive["source_dir"] == "${local.lambda_source_dir}"
    assert archive["excludes"] == "${local.lambda_excludes}"
    excludes = cfg.locals["lambda_excludes"]
    for pattern in ("tests/**", "build/**", "__pycache__"):
        assert pattern in excludes, pattern


BUILD_LAMBDA = TERRAFORM / "scripts" / "build_lambda.sh"


def _build_lambda(tmp_path: Path, source: Path, requirements: str) -> subprocess.CompletedProcess[str]:
    req = tmp_path / "requirements.txt"
    req.write_text(requirements)
    env = {
        **os.environ,
        "S3VL_LAMBDA_SOURCE": str(source),
        "S3VL_LAMBDA_BUILD": str(tmp_path / "package"),
        "S3VL_LAMBDA_REQUIREMENTS": str(req),
        # No network in unit tests: any pip call would fail loudly instead of downloading.
        "PIP": "false",
    }
    return subprocess.run(["bash", str(BUILD_LAMBDA)], capture_output=True, text=True, env=env, timeout=60, check=False)


def test_build_lambda_copies_the_sources_without_tests_or_caches(tmp_path: Path) -> None:
    src = tmp_path / "lambda"
    for rel in ("handler.py", "pkg/__init__.py", "tests/test_x.py", "build/old.py", "pkg/__pycache__/m.pyc"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("x = 1\n")
    proc = _build_lambda(tmp_path, src, "# only boto3 from the runtime\n\n")
    assert proc.returncode == 0, proc.stderr
    built = sorted(str(p.relative_to(tmp_path / "package")) for p in (tmp_path / "package").rglob("*"))
    assert built == ["handler.py", "pkg", "pkg/__init__.py"]


def test_build_lambda_installs_requirements_and_fails_loudly(tmp_path: Path) -> None:
    proc = _build_lambda(tmp_path, REPO / "lambda", "boto3>=1.44.5\n")
    # PIP=false stands in for pip: a non-empty requirements file must reach it, and its failure stops the build.
    assert proc.returncode != 0
    assert (tmp_path / "package" / "handler.py").is_file()


def test_build_lambda_rejects_an_unknown_architecture(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", str(BUILD_LAMBDA)],
        capture_output=True,
        text=True,
        env={**os.environ, "LAMBDA_ARCH": "sparc", "S3VL_LAMBDA_BUILD": str(tmp_path / "p")},
        timeout=30,
        check=False,
    )
    assert proc.returncode == 2
    assert "LAMBDA_ARCH" in proc.stderr


def test_example_ships_the_built_lambda_package() -> None:
    mod = example().modules["s3vl"]
    assert mod["lambda_source_dir"] == "${path.module}/../../../lambda/build/package"
    assert (EXAMPLE / "../../../lambda/build/package").resolve() == REPO / "lambda" / "build" / "package"


def test_worker_and_reconcile_tasks() -> None:
    cfg = module()
    worker = cfg.resource("aws_ecs_task_definition", "worker")
    reconcile = cfg.resource("aws_ecs_task_definition", "reconcile")
    assert 'command = ["worker"]' in worker["container_definitions"]
    assert 'command = ["reconcile", "--apply", "--json"]' in reconcile["container_definitions"]
    for td in (worker, reconcile):
        assert td["requires_compatibilities"] == ["FARGATE"]
        assert td["execution_role_arn"] == "${aws_iam_role.execution.arn}"
        assert td["task_role_arn"] == "${aws_iam_role.task.arn}"
        assert "local.container_common" in td["container_definitions"]
    # The database URL is a Secrets Manager secret injected by ECS, never a plain environment value.
    assert cfg.locals["container_secrets"] == [
        {"name": "S3VL_DATABASE_URL", "valueFrom": "${local.database_url_secret_arn}"}
    ]
    env = cfg.locals["container_environment"]
    assert "AWS_REGION" in env
    assert "S3VL_METRICS_PORT" in env
    assert "S3VL_DATABASE_URL" not in env
    secret = cfg.resource("aws_secretsmanager_secret", "database_url")
    assert secret["kms_key_id"] == "${local.kms_key_arn}"
    assert "aws_secretsmanager_secret_version" not in cfg.resources, "the value must stay out of state"
    common = cfg.locals["container_common"]
    assert common["readonlyRootFilesystem"] is True
    assert common["user"] == "10001:10001"
    service = cfg.resource("aws_ecs_service", "worker")
    assert service["desired_count"] == "${var.worker_desired_count}"
    assert service["launch_type"] == "FARGATE"
    assert one(service["network_configuration"])["assign_public_ip"] is False


def test_worker_autoscaling_follows_the_outbox_lag() -> None:
    cfg = module()
    target = cfg.resource("aws_appautoscaling_target", "worker")
    assert target["min_capacity"] == "${var.worker_min_count}"
    assert target["max_capacity"] == "${var.worker_max_count}"
    for name, policy in (("worker_scale_out", "worker_out"), ("worker_scale_in", "worker_in")):
        alarm = cfg.resource("aws_cloudwatch_metric_alarm", name)
        assert alarm["alarm_actions"] == [f"${{aws_appautoscaling_policy.{policy}.arn}}"]
        metric = one(one(alarm["dynamic"])["metric_query"]["content"])["metric"]
        assert one(metric)["metric_name"] == "OutboxLagSeconds"
        assert one(metric)["namespace"] == "${local.metric_namespace}"


def test_reconcile_runs_nightly_from_eventbridge_scheduler() -> None:
    cfg = module()
    schedule = cfg.resource("aws_scheduler_schedule", "reconcile")
    assert schedule["schedule_expression"] == "${var.reconcile_schedule_expression}"
    assert cfg.variables["reconcile_schedule_expression"]["default"] == "cron(0 3 * * ? *)"
    ecs = one(one(schedule["target"])["ecs_parameters"])
    assert ecs["task_definition_arn"] == "${aws_ecs_task_definition.reconcile.arn}"
    assert one(ecs["network_configuration"])["assign_public_ip"] is False
    run = next(st for st in statements(cfg.policy_document("scheduler")) if st["sid"] == "RunReconcileTask")
    assert run["actions"] == ["ecs:RunTask"]
    assert run["resources"] == ["${aws_ecs_task_definition.reconcile.arn_without_revision}:*"]


def test_vpc_endpoints_are_optional_and_cover_the_services() -> None:
    cfg = module()
    assert cfg.variables["create_vpc_endpoints"]["default"] is False
    endpoint = cfg.resource("aws_vpc_endpoint", "interface")
    assert endpoint["for_each"] == "${var.create_vpc_endpoints ? toset(var.vpc_endpoint_services) : toset([])}"
    assert endpoint["vpc_endpoint_type"] == "Interface"
    assert endpoint["private_dns_enabled"] is True
    services = set(cfg.variables["vpc_endpoint_services"]["default"])
    assert {"s3vectors", "bedrock-runtime", "lambda", "secretsmanager", "logs"} <= services


def test_alarms() -> None:
    cfg = module()
    alarms = cfg.resources["aws_cloudwatch_metric_alarm"]
    lambda_metrics = {a["metric_name"] for a in alarms.values() if a.get("namespace") == "AWS/Lambda"}
    assert lambda_metrics == {"Errors", "Throttles"}
    assert cfg.locals["metric_namespace"] == "s3vl"
    sync_metrics = {}
    for name, alarm in alarms.items():
        if alarm.get("namespace") == "${local.metric_namespace}":
            if alarm["metric_name"] == "ReconcileFailed":  # also Sync="*": the run failed before any sync
                assert alarm["for_each"] == '${var.reconcile_enabled ? setunion(local.syncs, ["*"]) : toset([])}'
            else:
                assert alarm["for_each"] == "${local.syncs}", name
            assert alarm["dimensions"] == {"Sync": "${each.key}"}, name
            sync_metrics[alarm["metric_name"]] = alarm
    assert set(sync_metrics) == {"OutboxLagSeconds", "FailedRows", "ReconcileDrift", "ReconcileFailed"}
    assert sync_metrics["OutboxLagSeconds"]["threshold"] == "${var.lag_alarm_threshold_seconds}"
    for name, alarm in alarms.items():
        assert alarm.get("alarm_description"), name
        if name.startswith("worker_scale_"):
            assert "aws_appautoscaling_policy" in alarm["alarm_actions"][0], name
        else:
            assert alarm["alarm_actions"] == "${local.alarm_actions}", name
            assert alarm["ok_actions"] == "${local.alarm_actions}", name
    assert module().locals["alarm_actions"] == "${concat(var.alarm_actions, aws_sns_topic.alarms[*].arn)}"


def _s3vl_metric_uses(node: Any) -> Iterator[dict[str, Any]]:
    """Every block of the module (alarm, metric_query metric, ...) that names a metric in namespace s3vl."""
    if isinstance(node, dict):
        if node.get("namespace") in ("${local.metric_namespace}", "s3vl") and "metric_name" in node:
            yield node
        for value in node.values():
            yield from _s3vl_metric_uses(value)
    elif isinstance(node, list):
        for value in node:
            yield from _s3vl_metric_uses(value)


def test_alarm_metrics_are_exactly_the_ones_sync_emf_emits() -> None:
    """alarms.tf / worker.tf read what sync/emf.py writes: names, namespace, dimension, a gauge statistic."""
    from sync.telemetry import emf

    cfg = module()
    assert cfg.locals["metric_namespace"] == emf.NAMESPACE
    uses = list(_s3vl_metric_uses(cfg.resources))
    assert {u["metric_name"] for u in uses} == set(emf.METRICS)
    scaling = [u for u in uses if "stat" in u]
    assert scaling, "the autoscaling alarms read OutboxLagSeconds through metric_query"
    for use in uses:
        assert set(use["dimensions"]) == {emf.DIMENSION}, use
        # every s3vl metric is a gauge published repeatedly (several workers report the same sync)
        assert use.get("statistic", use.get("stat")) == "Maximum", use
        if "unit" in use:  # an alarm with a unit only matches datapoints of that unit
            assert use["unit"] == emf.METRICS[use["metric_name"]], use
    by_source = {u["metric_name"] for u in uses}
    assert set(emf.WORKER_METRICS) | set(emf.RECONCILE_METRICS) == by_source


# ---------------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------------


def test_dockerfile_runs_s3vl_as_the_task_definitions_user() -> None:
    text = (REPO / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms
    assert all(f == "python:3.11-slim" for f in froms)
    assert re.search(r"pip install \. \\$", text, re.M), "installs the core distribution from the repository"
    assert "./local" not in text, "the local stack stays out of the image"
    assert "s3vl_local" not in text
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users
    assert users[-1] == module().locals["container_common"]["user"] == "10001:10001"
    assert not users[-1].startswith(("0", "root"))
    assert re.search(r'^ENTRYPOINT \["s3vl"\]$', text, re.M)
    assert re.search(r'^CMD \["worker"\]$', text, re.M)
    # the wheel carries sql/ as package data through the sync/sql link: both must be in the build context
    assert "COPY sql ./sql" in text
    assert "COPY sync ./sync" in text
    assert not {"sql", "sync"} & set((REPO / ".dockerignore").read_text().split())


# ---------------------------------------------------------------------------------------------------
# terraform fmt, checkov
# ---------------------------------------------------------------------------------------------------


def test_terraform_fmt() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed: formatting is checked where it is (CI has it)")
    env = {**os.environ, "TF_CLI_CONFIG_FILE": os.devnull, "CHECKPOINT_DISABLE": "1"}
    proc = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# A local provider mirror (unpacked layout) lets `terraform validate` check argument names and types.
PROVIDER_MIRROR = Path(os.environ.get("S3VL_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
_AWS_IN_MIRROR = PROVIDER_MIRROR / "registry.terraform.io" / "hashicorp" / "aws"


def _stand_in_for_old_provider(copy: Path) -> None:
    """Rewrite a copy of terraform/ so an older AWS provider (no S3 Vectors) and no archive provider
    can validate everything else: the S3 Vectors resources and the zip become locals with the same
    attributes (their arguments are checked against the provider docs by the tests above)."""
    mod = copy / "modules" / "s3vl"
    (mod / "vectors.tf").unlink()
    (mod / "zz_stand_ins.tf").write_text(
        """locals {
  stand_in_arn     = "arn:aws:s3vectors:us-west-2:123456789012:bucket/b"
  stand_in_bucket  = { vector_bucket_name = var.vector_bucket_name, vector_bucket_arn = local.stand_in_arn }
  stand_in_indexes = { for k, v in var.indexes : k => { index_arn = "${local.stand_in_arn}/index/${k}" } }
  stand_in_archive = { output_path = "lambda.zip", output_base64sha256 = "stand-in" }
}
"""
    )
    for tf in [*mod.glob("*.tf"), *(copy / "examples" / "complete").glob("*.tf")]:
        text = tf.read_text()
        text = re.sub(r"\n\s*archive = \{[^}]*\}", "", text)
        text = text.replace('">= 6.24"', '">= 5.0"')
        text = re.sub(r'data "archive_file" "lambda" \{.*?\n\}\n', "", text, flags=re.S)
        for real, stand_in in (
            ("data.archive_file.lambda[0]", "local.stand_in_archive"),
            ("aws_s3vectors_vector_bucket.this", "local.stand_in_bucket"),
            ("aws_s3vectors_index.this", "local.stand_in_indexes"),
            # Provider 6 renamed aws_region's `name` to `region`.
            ("data.aws_region.current.region", "data.aws_region.current.name"),
        ):
            text = text.replace(real, stand_in)
        tf.write_text(text)


def test_terraform_validate_against_the_local_provider_mirror(tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    if terraform is None or not _AWS_IN_MIRROR.is_dir():
        pytest.skip(f"needs terraform and an AWS provider mirror at {PROVIDER_MIRROR} (no download here)")
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM, copy, ignore=shutil.ignore_patterns(".terraform*", "*.md", "scripts"))
    _stand_in_for_old_provider(copy)
    rc = tmp_path / "terraformrc"
    # The cache dir symlinks the 700 MB provider instead of copying it; nothing is written to the mirror.
    rc.write_text(
        f"""plugin_cache_dir = "{PROVIDER_MIRROR}"
plugin_cache_may_break_dependency_lock_file = true
provider_installation {{
  filesystem_mirror {{
    path    = "{PROVIDER_MIRROR}"
    include = ["registry.terraform.io/hashicorp/aws"]
  }}
}}
"""
    )
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(rc), "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    root = copy / "examples" / "complete"
    init = subprocess.run(
        [terraform, "init", "-backend=false", "-input=false", "-no-color"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    proc = subprocess.run(
        [terraform, "validate", "-json", "-no-color"],
        cwd=root,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    result = json.loads(proc.stdout)
    errors = [
        f"{d.get('summary')}: {d.get('detail', '')} at {d.get('range', {}).get('filename')}"
        for d in result["diagnostics"]
        if d["severity"] == "error"
    ]
    assert errors == []
    assert result["valid"] is True


CHECKOV_TIMEOUT = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One checkov run over terraform/ per session (about 5 s; the very first run also installs checkov
    into its own venv, about 2 minutes, hence the longer timeouts of the tests that use it)."""
    out = tmp_path_factory.mktemp("checkov") / "report.json"
    proc = subprocess.run(
        ["bash", str(CHECKOV), "-d", str(TERRAFORM), "--framework", "terraform", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=560,
        check=False,
        cwd=REPO,
    )
    out.write_text(proc.stdout)
    assert proc.stdout.strip(), f"checkov printed nothing (exit {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout)
    if isinstance(report, list):
        report = next(r for r in report if r.get("check_type") == "terraform")
    assert isinstance(report, dict)
    return report


@CHECKOV_TIMEOUT
def test_checkov_has_zero_failed_checks(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
        for c in checkov_report["results"]["failed_checks"]
    ]
    assert failed == []
    assert summary["failed"] == 0
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 150, summary


@CHECKOV_TIMEOUT
def test_checkov_really_scanned_the_key_resources(checkov_report: dict[str, Any]) -> None:
    # A resource whose count checkov cannot evaluate silently drops out of the scan: guard against it.
    checked = {c["resource"] for c in checkov_report["results"]["passed_checks"]}
    for resource in (
        "module.s3vl.aws_lambda_function.query",
        "module.s3vl.aws_kms_key.this[0]",
        "module.s3vl.aws_ecs_cluster.this[0]",
        "module.s3vl.aws_secretsmanager_secret.database_url[0]",
        "module.s3vl.aws_ecs_task_definition.worker",
        "module.s3vl.aws_security_group.lambda",
        "module.s3vl.aws_sqs_queue.lambda_dlq",
        "module.s3vl.aws_cloudwatch_log_group.lambda",
        "aws_ecr_repository.worker",
    ):
        assert resource in checked, resource


@CHECKOV_TIMEOUT
def test_checkov_skips_are_justified_next_to_the_resource(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    for check in skipped:
        assert len(check["check_result"].get("suppress_comment", "").strip()) >= 30, check["check_id"]
    # Every skip comment in the code carries a reason, and is one checkov actually honoured.
    comments = re.findall(r"#checkov:skip=(CKV2?_[A-Z]+_\d+):(.*)", module().text + example().text)
    assert comments, "expected the justified skips documented in the module"
    for check_id, reason in comments:
        assert len(reason.strip()) >= 30, check_id
    assert {c for c, _ in comments} == {c["check_id"] for c in skipped}
