#!/usr/bin/env python3
"""Parse a running server's GET /metrics with the official Prometheus Python client's text parser.

    python3 -m venv /tmp/prom && /tmp/prom/bin/pip install prometheus-client
    /tmp/prom/bin/python tools/smoke/metrics_check.py http://127.0.0.1:8000 [API_KEY]
    (or Debian's python3-prometheus-client with /usr/bin/python3)

Sends one completion first, then checks that every family parses, has the expected type and the model_name label,
and that histogram buckets are cumulative and end at _count.
"""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

base = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000"
auth = {"Authorization": "Bearer " + (sys.argv[2] if len(sys.argv) > 2 else "EMPTY")}
model = json.load(urllib.request.urlopen(urllib.request.Request(base + "/v1/models", headers=auth)))["data"][0]["id"]
req = urllib.request.Request(base + "/v1/completions", method="POST", headers={"Content-Type": "application/json", **auth},
                             data=json.dumps({"model": model, "prompt": [1, 2, 3], "max_tokens": 4, "temperature": 0}).encode())
urllib.request.urlopen(req).read()
resp = urllib.request.urlopen(base + "/metrics")   # no key: /metrics is open, as vLLM's
assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4"), resp.headers["Content-Type"]
families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
expected = {
    "qwen3sharp:num_requests_running": "gauge", "qwen3sharp:num_requests_waiting": "gauge",
    "qwen3sharp:kv_cache_usage_perc": "gauge", "qwen3sharp:prompt_tokens": "counter",
    "qwen3sharp:generation_tokens": "counter", "qwen3sharp:request_success": "counter",
    "qwen3sharp:prefix_cache_queries": "counter", "qwen3sharp:prefix_cache_hits": "counter",
    "qwen3sharp:num_preemptions": "counter", "qwen3sharp:time_to_first_token_seconds": "histogram",
    "qwen3sharp:inter_token_latency_seconds": "histogram", "qwen3sharp:e2e_request_latency_seconds": "histogram",
}
for name, kind in expected.items():
    f = families.get(name)
    assert f is not None, f"missing {name}; have {sorted(families)}"
    assert f.type == kind, f"{name}: {f.type} != {kind}"
    assert all(s.labels.get("model_name") == model for s in f.samples), name
    if kind == "histogram":
        buckets = [s.value for s in f.samples if s.name.endswith("_bucket")]
        count = next(s.value for s in f.samples if s.name.endswith("_count"))
        assert buckets == sorted(buckets) and buckets[-1] == count, name
assert families["qwen3sharp:time_to_first_token_seconds"].samples[-2].value >= 1
print(f"ok: {len(families)} families parsed by prometheus_client")
