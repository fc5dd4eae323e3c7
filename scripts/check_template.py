#!/usr/bin/env python3
"""Checks that template.yaml grants each function exactly what its code uses, no more.

Run by scripts/test.sh with the .venv's Python (cfn-lint's YAML loader reads the CloudFormation
short forms such as !Ref and !GetAtt). Exits non-zero naming the function and the grant.
"""
import json
import sys

from cfnlint.decode import decode

# What each function's code calls, as (policy or action, resource) pairs.
EXPECTED = {
    "WebhookFunction": {
        ("AWSSecretsManagerGetSecretValuePolicy", "SecretArn"),
        ("sqs:SendMessage", "ContactQueue"),
        ("sqs:SendMessage", "ContactDeadLetterQueue"),
        ("dynamodb:PutItem", "ImportsTable"),
        # A batch's first answer, read back for a repeat (recall_answer).
        ("dynamodb:GetItem", "ImportsTable"),
        ("dynamodb:PutItem", "IdempotencyTable"),
        ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
    },
    "SyncWorkerFunction": {
        ("AWSSecretsManagerGetSecretValuePolicy", "SecretArn"),
        ("sqs:SendMessage", "ContactDeadLetterQueue"),
        ("dynamodb:PutItem", "ImportsTable"),
        ("sqs:ChangeMessageVisibility", "ContactQueue"),
        ("dynamodb:PutItem", "IdempotencyTable"),
        ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:DeleteItem", "IdempotencyTable"),
    },
    "ImportReconcilerFunction": {
        ("AWSSecretsManagerGetSecretValuePolicy", "SecretArn"),
        ("sqs:SendMessage", "ContactQueue"),
        ("sqs:SendMessage", "ContactDeadLetterQueue"),
        ("dynamodb:Query", "ImportsTable/index/open-imports"),
        ("dynamodb:GetItem", "ImportsTable"),
        ("dynamodb:UpdateItem", "ImportsTable"),
    },
    "ImportCallbackFunction": {
        ("AWSSecretsManagerGetSecretValuePolicy", "SecretArn"),
        ("sqs:SendMessage", "ContactQueue"),
        ("sqs:SendMessage", "ContactDeadLetterQueue"),
        ("dynamodb:GetItem", "ImportsTable"),
        ("dynamodb:UpdateItem", "ImportsTable"),
    },
}


def resource_name(value):
    """The logical name behind !Ref X, !GetAtt X.Attr or {"Fn::GetAtt": [X, Attr]}, and
    X/index/NAME behind !Sub "${X.Arn}/index/NAME"."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        sub = value.get("Fn::Sub")
        if isinstance(sub, str) and sub.startswith("${") and ".Arn}/index/" in sub:
            return sub[2:].replace(".Arn}", "", 1)
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return (target.split(".")[0] if isinstance(target, str) else target[0])
    return json.dumps(value)


# What SAM's policy templates expand to (aws/serverless-application-model,
# samtranslator/policy_templates_data/policy_templates.json): a template is checked by its
# actions, so one that grants a wildcard (SQSSendMessagePolicy: sqs:SendMessage*) is seen.
POLICY_TEMPLATES = {
    "AWSSecretsManagerGetSecretValuePolicy": ["secretsmanager:GetSecretValue"],
    "SQSSendMessagePolicy": ["sqs:SendMessage*"],
    "SQSPollerPolicy": ["sqs:ChangeMessageVisibility", "sqs:ChangeMessageVisibilityBatch",
                        "sqs:DeleteMessage", "sqs:DeleteMessageBatch", "sqs:GetQueueAttributes",
                        "sqs:ReceiveMessage"],
    "DynamoDBCrudPolicy": ["dynamodb:GetItem", "dynamodb:DeleteItem", "dynamodb:PutItem",
                           "dynamodb:Scan", "dynamodb:Query", "dynamodb:UpdateItem",
                           "dynamodb:BatchWriteItem", "dynamodb:BatchGetItem",
                           "dynamodb:DescribeTable", "dynamodb:ConditionCheckItem"],
    "DynamoDBReadPolicy": ["dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query",
                           "dynamodb:BatchGetItem", "dynamodb:DescribeTable"],
}


def expanded_actions(policies):
    """Every action a function's policies allow, SAM's templates expanded."""
    actions = set()
    for policy in policies:
        if not isinstance(policy, dict):
            actions.add("*")
            continue
        for name, body in policy.items():
            if name == "Statement":
                for statement in body:
                    if statement.get("Effect") == "Allow":
                        listed = statement["Action"]
                        actions.update(listed if isinstance(listed, list) else [listed])
            elif name in POLICY_TEMPLATES:
                actions.update(POLICY_TEMPLATES[name])
            else:
                actions.add(f"{name} (a SAM policy template this check does not know: add it)*")
    return actions


def grants(policies):
    found = set()
    for policy in policies:
        if not isinstance(policy, dict):
            found.add((str(policy), "*"))  # a managed policy by name: never expected
            continue
        for name, body in policy.items():
            if name == "Statement":
                for statement in body:
                    if statement.get("Effect") != "Allow":
                        continue
                    actions = statement["Action"]
                    for action in actions if isinstance(actions, list) else [actions]:
                        found.add((action, resource_name(statement["Resource"])))
            else:
                (argument,) = body.values()
                found.add((name, resource_name(argument)))
    return found


def main():
    template, matches = decode("template.yaml")
    if matches:
        sys.exit(f"template.yaml does not parse: {matches}")
    failures = []
    functions = {name: r for name, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}
    if set(functions) != set(EXPECTED):
        failures.append(f"functions {sorted(functions)} differ from the checked {sorted(EXPECTED)}")
    for name, resource in functions.items():
        found = grants(resource["Properties"].get("Policies", []))
        for extra in sorted(found - EXPECTED.get(name, set())):
            failures.append(f"{name} is granted {extra[0]} on {extra[1]}, which its code does not use")
        for missing in sorted(EXPECTED.get(name, set()) - found):
            failures.append(f"{name} lacks {missing[0]} on {missing[1]}")
        if any(action.endswith("*") or resource == "*" for action, resource in found):
            failures.append(f"{name} has a wildcard grant")
        wild = sorted(a for a in expanded_actions(resource["Properties"].get("Policies", [])) if "*" in a)
        if wild:
            failures.append(f"{name} is granted {', '.join(wild)}: name the actions it uses")
    if failures:
        sys.exit("\n".join(failures))
    print(f"least privilege: {sum(len(v) for v in EXPECTED.values())} grants over {len(functions)} functions, none extra")


if __name__ == "__main__":
    main()
