"""schemathesis against a real server process and its live OpenAPI schema, every check on.

Positive cases must be accepted (2xx), negative ones refused with a 4xx, responses must match the documented
status codes, content types, headers and schemas, and nothing may answer 5xx (504 aside: see the config).
tests/schemathesis.toml says where the run differs from schemathesis's defaults, and why.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_schemathesis_all_checks_pass_against_the_live_schema(model_dir, start_server, tmp_path):
    # Small limits keep the generated requests cheap to decode. The token limit is not something JSON Schema
    # can state, so it is set out of reach (100 characters, each at most 18 after Unicode normalization, are
    # fewer than 2048 tokens) and a schema-valid text never gets the 413 the schema documents for it.
    server = start_server(model_dir, "--max-texts", "4", "--max-text-chars", "100", "--max-beam", "4",
                          "--max-source-tokens", "2048", "--log-level", "warning")
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
           f"{server.url}/schema/openapi.json", "--checks", "all", "--max-examples", "40", "--workers", "1",
           "--generation-database", "none", "--request-timeout", "30", "--no-color"]
    run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20000:]
    tested = re.search(r"Tested: (\d+)", report)
    assert tested and int(tested[1]) >= 12, report[-5000:]      # every operation (12 with LibreTranslate's)
    assert " passed" in report and "failed" not in report.split("SUMMARY")[-1], report[-5000:]
    output = server.stop()
    assert "Traceback" not in output and "unhandled error" not in output, output[-10000:]
