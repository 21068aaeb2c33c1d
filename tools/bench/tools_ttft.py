"""First and repeated latency of a chat request with tools, against a running `qwen3 serve` (the demo model when it
is started without --model): the first request with a new tools list compiles its tool-call grammar (and, without the
start-up warm-up, builds the vocabulary's byte trie); later ones reuse the cached matcher.

usage: /usr/bin/python3 tools/bench/tools_ttft.py http://127.0.0.1:PORT EXTRA_TOOLS TAG
  EXTRA_TOOLS: functions with nested parameters offered beside get_weather; TAG makes their names (and so the grammar) new
"""
import json, os, sys, time, urllib.request
base = sys.argv[1]
def tool(name, props, req):
    return {"type": "function", "function": {"name": name, "description": f"{name} tool",
            "parameters": {"type": "object", "properties": props, "required": req}}}
tools = [tool("get_weather", {"city": {"type": "string", "description": "The city name"}, "unit": {"type": "string", "enum": ["c", "f"]}}, ["city"])]
for i in range(int(sys.argv[2])):
    tools.append(tool(f"tool_{i}_{sys.argv[3]}", {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 50},
        "filters": {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}, "since": {"type": "string", "format": "date"}}}}, ["query"]))
body = {"model": os.environ.get("MODEL", "qwen3sharp-demo-tiny-v7"), "temperature": 0, "max_tokens": 80, "enable_thinking": False,
        "messages": [{"role": "user", "content": "What's the weather in Paris?"}], "tools": tools}
for k in range(3):
    t = time.time()
    r = json.loads(urllib.request.urlopen(urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(), headers={"content-type": "application/json"})).read())
    dt = time.time() - t
    m = r["choices"][0]["message"]
    print(f"{base} tools={len(tools)} run {k}: {dt*1000:.0f} ms, {r['usage']['completion_tokens']} tokens, calls {[(c['function']['name'], c['function']['arguments']) for c in m.get('tool_calls') or []]}")
