"""`python deploy/check_dashboard.py PROMETHEUS_URL [--across-replicas]`: every panel query of the Grafana
dashboard (monitoring/grafana/dashboards/translator.json) evaluated in a running Prometheus, after a load run.

Each query must evaluate without error and have data, except the "Refused" panels (no refusals happen in a
healthy run). With --across-replicas (several translators behind a load balancer), a query must also have
per-instance series exactly when it asks for them (`by (instance)`): every other panel sums across replicas.
Exits non-zero, naming the queries, when a check fails. Used by deploy/compose_test.sh and
deploy/compose_scale_test.sh."""
from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
import urllib.request
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parent.parent / "monitoring" / "grafana" / "dashboards" / "translator.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prometheus", help="Prometheus's base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--across-replicas", action="store_true", help="also check that the panels sum across replicas")
    args = ap.parse_args()
    dash = json.loads(DASHBOARD.read_text())
    n, bad = 0, []
    for panel in dash["panels"]:
        for t in panel["targets"]:
            expr = t["expr"].replace("$__rate_interval", "1m").replace("$job", ".*")
            url = args.prometheus + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            body = json.load(urllib.request.urlopen(url, timeout=10))
            if body["status"] != "success":
                sys.exit(f"{panel['title']}: {expr}: {body}")
            n += 1
            result = body["data"]["result"]
            kind = ""
            if args.across_replicas:
                per_instance = "by (instance)" in expr
                has_instance = any("instance" in r["metric"] for r in result)
                kind = "per instance  " if per_instance else "summed        "
                if has_instance != per_instance:
                    bad.append(f"{'not summed' if has_instance else 'summed but should be per instance'}: {expr}")
            print(f"  {len(result):2} series  {kind}{panel['title'][:40]:40}  {t['expr'][:70]}")
            if not result and not panel["title"].startswith("Refused"):
                bad.append(f"no data: {panel['title']}: {expr}")
    if bad:
        sys.exit("dashboard queries:\n  " + "\n  ".join(bad))
    print(f"{n} queries of {len(dash['panels'])} panels evaluate without error and have data "
          f"(uid {dash['uid']!r}, title {dash['title']!r})"
          + ("; all but the per-instance panels sum across the replicas" if args.across_replicas else ""))


if __name__ == "__main__":
    main()
