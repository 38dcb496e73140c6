"""Print k8s/extras/prometheusrule.yaml: the rule groups of alerts.yml (beside this file) as
the Prometheus Operator's PrometheusRule, comments included, so the two never differ.

    python3 docker/prometheus/prometheusrule.py > k8s/extras/prometheusrule.yaml

Standard library only (the rules are copied as text, not re-serialised); tests/test_alert_rules.py
fails when the committed file is not this script's output."""

from __future__ import annotations

import sys
from pathlib import Path

RULES = Path(__file__).resolve().with_name("alerts.yml")

HEADER = """\
# Generated from docker/prometheus/alerts.yml by docker/prometheus/prometheusrule.py: edit the
# rules there, then run  python3 docker/prometheus/prometheusrule.py > k8s/extras/prometheusrule.yaml
# Optional, not part of the base: kubectl apply -f k8s/extras/prometheusrule.yaml
# For clusters running the Prometheus Operator (kube-prometheus-stack): your Prometheus must select
# this rule; with kube-prometheus-stack, set the `release` label below to your release name, or
# configure ruleSelector accordingly. Runbook, one entry per alert: docs/alerts.md.
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: textserve
  namespace: textserve
  labels:
    app.kubernetes.io/name: textserve
    app.kubernetes.io/component: api
    release: kube-prometheus-stack
spec:
"""


def prometheus_rule(rules: str) -> str:
    lines = rules.splitlines()
    start = lines.index("groups:")  # the file's own header comments stay behind
    body = "".join(f"  {line}\n" if line else "\n" for line in lines[start:])
    return HEADER + body


if __name__ == "__main__":
    sys.stdout.write(prometheus_rule(RULES.read_text(encoding="utf-8")))
