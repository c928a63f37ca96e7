#!/usr/bin/env python3
"""Tool-calling figures for docs/benchmarks.md (issue 23): how often a model, offered
three tools over /v1/chat/completions with `tool_choice` auto, calls the right one with the
right arguments, and whether its answer from the tool's result holds the tool's value.

For each model: start `zhiku serve` on a scratch data dir, publish a bot without
knowledge, then for each question (Chinese and English: the weather, an exchange rate, an
order's status, and a few that need no tool):
  1. ask with the three tools, `tool_choice` auto: the call (or the answer) is scored —
     right tool, arguments equal to the expected ones (values compared without case and
     spaces);
  2. when it called the right tool, send the stand-in API's result back (`tool_choice`
     none, as docs/api.md advises for small models) and check the answer holds the value.
Questions that need no tool count as right when no tool is called.

With --bot-tools the same questions go to a bot that has the three tools as its own HTTP
tools (issue 23 §2), served by a stand-in API on loopback: the server calls them and the
model answers from their results in the same request (the debug chat's SSE stream: its
`tool_call` events and the answer of its `done` event are scored the same way).

Usage: .venv/bin/python scripts/bench_tools.py [--models a,b] [--threads 2] [--bot-tools]
       [--json out.json]
(builds nothing: run `cargo build --release` first; CARGO_TARGET_DIR is read as cargo
reads it).
"""
import argparse
import http.server
import json
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent))
import zhiku_server  # noqa: E402  (starting the server, as the other benchmarks do)

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
TOKEN = "bench-admin-token"

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "查询一个城市现在的天气 / current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "城市名 / city"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_exchange_rate", "description": "查询汇率 / exchange rate between two currencies",
        "parameters": {"type": "object", "properties": {
            "from_currency": {"type": "string", "description": "ISO code, e.g. USD"},
            "to_currency": {"type": "string", "description": "ISO code, e.g. CNY"}},
            "required": ["from_currency", "to_currency"]}}},
    {"type": "function", "function": {
        "name": "get_order_status", "description": "查询订单状态 / status of an order by its number",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                       "required": ["order_id"]}}},
]

WEATHER = {"北京": ("晴", "18"), "上海": ("小雨", "21"), "广州": ("多云", "27"), "Paris": ("sunny", "16"),
           "London": ("rain", "11"), "Tokyo": ("cloudy", "19"), "深圳": ("阵雨", "26"), "Berlin": ("snow", "-2")}
RATES = {("USD", "CNY"): "7.12", ("EUR", "CNY"): "7.71", ("JPY", "CNY"): "0.048", ("GBP", "USD"): "1.27",
         ("CNY", "USD"): "0.14", ("EUR", "USD"): "1.08"}
ORDERS = {"A1024": "已发货", "B2048": "待付款", "C4096": "shipped", "D8192": "delivered", "E1234": "已签收"}

QUESTIONS = [
    ("北京今天天气怎么样？", "get_weather", {"city": "北京"}),
    ("上海现在下雨吗？", "get_weather", {"city": "上海"}),
    ("广州现在多少度？", "get_weather", {"city": "广州"}),
    ("深圳现在的天气如何？", "get_weather", {"city": "深圳"}),
    ("What is the weather in Paris right now?", "get_weather", {"city": "Paris"}),
    ("Is it raining in London?", "get_weather", {"city": "London"}),
    ("How warm is it in Tokyo now?", "get_weather", {"city": "Tokyo"}),
    ("What's the weather like in Berlin today?", "get_weather", {"city": "Berlin"}),
    ("1美元现在能换多少人民币？", "get_exchange_rate", {"from_currency": "USD", "to_currency": "CNY"}),
    ("欧元兑人民币的汇率是多少？", "get_exchange_rate", {"from_currency": "EUR", "to_currency": "CNY"}),
    ("日元兑人民币汇率多少？", "get_exchange_rate", {"from_currency": "JPY", "to_currency": "CNY"}),
    ("人民币兑美元的汇率是多少？", "get_exchange_rate", {"from_currency": "CNY", "to_currency": "USD"}),
    ("What is the GBP to USD exchange rate?", "get_exchange_rate", {"from_currency": "GBP", "to_currency": "USD"}),
    ("How many US dollars is one euro worth today?", "get_exchange_rate", {"from_currency": "EUR", "to_currency": "USD"}),
    ("Convert USD to CNY: what is the rate?", "get_exchange_rate", {"from_currency": "USD", "to_currency": "CNY"}),
    ("EUR to CNY rate please.", "get_exchange_rate", {"from_currency": "EUR", "to_currency": "CNY"}),
    ("我的订单A1024到哪了？", "get_order_status", {"order_id": "A1024"}),
    ("帮我查一下订单 B2048 的状态。", "get_order_status", {"order_id": "B2048"}),
    ("订单E1234签收了吗？", "get_order_status", {"order_id": "E1234"}),
    ("What is the status of order C4096?", "get_order_status", {"order_id": "C4096"}),
    ("Has my order D8192 been delivered?", "get_order_status", {"order_id": "D8192"}),
    ("Where is order A1024 now?", "get_order_status", {"order_id": "A1024"}),
    ("查询订单号C4096的物流状态", "get_order_status", {"order_id": "C4096"}),
    ("订单D8192现在什么状态？", "get_order_status", {"order_id": "D8192"}),
    ("东京现在天气怎么样？", "get_weather", {"city": "东京"}),
    ("伦敦今天冷吗？", "get_weather", {"city": "伦敦"}),
    ("英镑兑美元汇率？", "get_exchange_rate", {"from_currency": "GBP", "to_currency": "USD"}),
    ("What's the weather in Shanghai?", "get_weather", {"city": "Shanghai"}),
    ("Translate 'good morning' into Chinese.", None, None),
    ("1加1等于几？", None, None),
    ("用一句话介绍一下你自己。", None, None),
    ("What is the capital of France?", None, None),
]

ALIASES = {"东京": "Tokyo", "伦敦": "London", "Shanghai": "上海", "巴黎": "Paris", "柏林": "Berlin"}

# An answer holds a tool's value when it says it in either language: the sky for the
# weather as well as the temperature, an order's status translated.
SAME_VALUE = {"晴": ["sunny"], "sunny": ["晴"], "小雨": ["rain", "下雨"], "rain": ["雨"], "多云": ["cloudy"],
              "cloudy": ["多云", "阴"], "阵雨": ["shower", "rain"], "snow": ["雪"],
              "已发货": ["shipped", "发货"], "待付款": ["awaiting payment", "unpaid", "pending payment"],
              "shipped": ["已发货", "发货"], "delivered": ["送达", "签收", "交付"], "已签收": ["delivered", "signed"]}


def norm(value):
    return str(value).replace(" ", "").lower()


def same_args(got, want):
    if set(got) != set(want):
        return False
    for key, value in want.items():
        a, b = norm(got[key]), norm(value)
        alias = norm(ALIASES.get(value, value))
        if a not in (b, alias):
            return False
    return True


def holds_value(answer, values):
    """Whether `answer` says one of `values` (or one of their translations)."""
    said = norm(answer)
    return any(norm(v) in said or any(norm(w) in said for w in SAME_VALUE.get(v, [])) for v in values)


def result_of(name, args):
    """The stand-in API: the tool's result and the values the answer may hold (any one)."""
    if name == "get_weather":
        city = args.get("city", "")
        key = ALIASES.get(city, city) if ALIASES.get(city, city) in WEATHER else city
        sky, temp = WEATHER.get(key, ("unknown", "?"))
        return {"city": city, "weather": sky, "temperature_c": temp}, [sky, temp]
    if name == "get_exchange_rate":
        pair = (args.get("from_currency", "").upper(), args.get("to_currency", "").upper())
        rate = RATES.get(pair, "?")
        return {"from": pair[0], "to": pair[1], "rate": rate}, [rate]
    status = ORDERS.get(args.get("order_id", "").upper(), "not found")
    return {"order_id": args.get("order_id"), "status": status}, [status]


def admin(base, method, path, body=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode() if body is not None else None,
                                 method=method)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read().decode() or "null")


def bench_model(model, threads):
    models_dir = Path(os.environ.get("ZHIKU_MODELS_DIR", ROOT / "models"))
    data = tempfile.mkdtemp(prefix="zhiku-bench-tools-")
    env = dict(os.environ, ZHIKU_BIND="127.0.0.1:0", ZHIKU_DATA_DIR=data, ZHIKU_MODELS_DIR=str(models_dir),
               ZHIKU_ADMIN_TOKEN=TOKEN, ZHIKU_LLM__MODEL=model, ZHIKU_LLM__THREADS=str(threads),
               ZHIKU_LOG="warn")
    server, base = zhiku_server.start(TARGET / "release/zhiku", env)
    try:
        bot = admin(base, "POST", "/api/bots", {"name": "tools", "persona": "你是一个助手。",
                                                 "model": {"temperature": 0, "max_tokens": 96}})["id"]
        admin(base, "POST", f"/api/bots/{bot}/publish")
        key = admin(base, "POST", f"/api/bots/{bot}/keys", {"name": "bench"})["key"]
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=600)
        rows = []
        for question, tool, want in QUESTIONS:
            started = time.time()
            reply = client.chat.completions.create(
                model=bot, messages=[{"role": "user", "content": question}], tools=TOOLS, tool_choice="auto")
            message = reply.choices[0].message
            calls = message.tool_calls or []
            got = [(c.function.name, json.loads(c.function.arguments or "{}")) for c in calls]
            if tool is None:
                right_tool = right_args = not calls
            else:
                right_tool = any(name == tool for name, _ in got)
                right_args = any(name == tool and same_args(args, want) for name, args in got)
            holds, said = None, None
            if tool is not None and right_tool:
                name, args = next((n, a) for n, a in got if n == tool)
                result, value = result_of(name, args)
                answer = client.chat.completions.create(
                    model=bot, tool_choice="none", tools=TOOLS,
                    messages=[{"role": "user", "content": question},
                              {"role": "assistant", "content": None, "tool_calls": [calls[0].model_dump()]},
                              {"role": "tool", "tool_call_id": calls[0].id,
                               "content": json.dumps(result, ensure_ascii=False)}])
                said = answer.choices[0].message.content or ""
                holds = holds_value(said, value)
            rows.append({"question": question, "tool": tool, "called": got, "right_tool": right_tool,
                         "right_args": right_args, "answer_holds_value": holds, "answer": said,
                         "seconds": round(time.time() - started, 1)})
            print(f"{model}: {question} → {got or (message.content or '')[:40]!r} "
                  f"tool {'✓' if right_tool else '✗'} args {'✓' if right_args else '✗'} value {holds}", flush=True)
        return {"model": model, "rows": rows}
    finally:
        server.terminate()
        server.wait(timeout=30)


class StandInApi(http.server.BaseHTTPRequestHandler):
    """The three tools as an HTTP API: /weather/{city}, /rate?from_currency=&to_currency=,
    /orders/{order_id}, answering what result_of() says."""

    def do_GET(self):  # noqa: N802 (the standard library's name)
        url = urllib.parse.urlparse(self.path)
        parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if parts[0] == "weather" and len(parts) == 2:
            result, _ = result_of("get_weather", {"city": parts[1]})
        elif parts[0] == "rate":
            result, _ = result_of("get_exchange_rate", query)
        elif parts[0] == "orders" and len(parts) == 2:
            result, _ = result_of("get_order_status", {"order_id": parts[1]})
        else:
            self.send_error(404)
            return
        body = json.dumps(result, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json; charset=utf-8")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def bot_tools(api):
    """TOOLS as a bot's HTTP tools calling the stand-in API at `api`."""
    urls = {"get_weather": f"{api}/weather/{{city}}", "get_exchange_rate": f"{api}/rate",
            "get_order_status": f"{api}/orders/{{order_id}}"}
    return [{"type": "http", "name": t["function"]["name"], "description": t["function"]["description"],
             "method": "GET", "url": urls[t["function"]["name"]], "parameters": t["function"]["parameters"]}
            for t in TOOLS]


def debug_chat(base, bot, question):
    """The debug chat's SSE events for `question`, as (event, data) pairs."""
    req = urllib.request.Request(f"{base}/api/bots/{bot}/chat", method="POST",
                                 data=json.dumps({"message": question}).encode())
    req.add_header("Authorization", f"Bearer {TOKEN}")
    req.add_header("content-type", "application/json")
    events, name = [], None
    with urllib.request.urlopen(req, timeout=900) as r:
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line[5:])))
    return events


def bench_bot_model(model, threads):
    models_dir = Path(os.environ.get("ZHIKU_MODELS_DIR", ROOT / "models"))
    data = tempfile.mkdtemp(prefix="zhiku-bench-bot-tools-")
    api_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInApi)
    threading.Thread(target=api_server.serve_forever, daemon=True).start()
    api = f"http://127.0.0.1:{api_server.server_address[1]}"
    env = dict(os.environ, ZHIKU_BIND="127.0.0.1:0", ZHIKU_DATA_DIR=data, ZHIKU_MODELS_DIR=str(models_dir),
               ZHIKU_ADMIN_TOKEN=TOKEN, ZHIKU_LLM__MODEL=model, ZHIKU_LLM__THREADS=str(threads),
               ZHIKU_TOOLS__ALLOW_PRIVATE="true", ZHIKU_LOG="warn")
    server, base = zhiku_server.start(TARGET / "release/zhiku", env)
    try:
        bot = admin(base, "POST", "/api/bots", {"name": "tools", "persona": "你是一个助手。",
                                                 "model": {"temperature": 0, "max_tokens": 96},
                                                 "tools": bot_tools(api)})["id"]
        rows = []
        for question, tool, want in QUESTIONS:
            started = time.time()
            events = debug_chat(base, bot, question)
            got = [(d["function"]["name"], json.loads(d["function"]["arguments"] or "{}"))
                   for e, d in events if e == "tool_call"]
            done = next((d for e, d in events if e == "done"), {})
            said = done.get("answer", "")
            if tool is None:
                right_tool = right_args = not got
            else:
                right_tool = any(name == tool for name, _ in got)
                right_args = any(name == tool and same_args(args, want) for name, args in got)
            holds = None
            if tool is not None and right_tool:
                _, value = result_of(*next((n, a) for n, a in got if n == tool))
                holds = holds_value(said, value)
            rows.append({"question": question, "tool": tool, "called": got, "right_tool": right_tool,
                         "right_args": right_args, "answer_holds_value": holds, "answer": said,
                         "rounds": len(done.get("tool_steps", [])), "seconds": round(time.time() - started, 1),
                         "first_token_ms": done.get("timings", {}).get("first_token_ms")})
            print(f"{model} (bot tools): {question} → {got or said[:40]!r} "
                  f"tool {'✓' if right_tool else '✗'} args {'✓' if right_args else '✗'} value {holds} "
                  f"({rows[-1]['seconds']} s)", flush=True)
        return {"model": f"{model} (bot tools)", "rows": rows}
    finally:
        server.terminate()
        server.wait(timeout=30)
        api_server.shutdown()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="qwen2.5-coder-1.5b-instruct-q4_k_m,qwen2.5-coder-0.5b-instruct-q4_k_m")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--bot-tools", action="store_true",
                        help="the tools as the bot's own HTTP tools, run by the server")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    bench = bench_bot_model if args.bot_tools else bench_model
    results = [bench(m, args.threads) for m in args.models.split(",")]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads {args.threads}")
    print("| model | questions | right tool (or none) | right arguments | answer holds the value |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        rows = r["rows"]
        n = len(rows)
        tool_rows = [x for x in rows if x["tool"] and x["right_tool"]]
        holds = sum(1 for x in tool_rows if x["answer_holds_value"])
        pct = lambda k, d: f"{k} ({100 * k / d:.0f} %)" if d else "–"
        print(f"| {r['model']} | {n} | {pct(sum(x['right_tool'] for x in rows), n)} | "
              f"{pct(sum(x['right_args'] for x in rows), n)} | {pct(holds, len(tool_rows))} |")
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
